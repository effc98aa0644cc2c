// Chat with the clone: the reply growing token by token as the clone generates it (Stop
// aborts), then its confidence (the fallback reply marked), and the conversation history,
// newest first, one page at a time. Screen readers hear the finished reply, not each token.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, replyStream, type Conversation, type Reply } from '../api';
import { ErrorBox, pct, when } from './common';

const PAGE = 10;

export function Chat() {
  const [text, setText] = useState('');
  const [busy, setBusy] = useState(false);
  const [last, setLast] = useState<{ message: string; text: string; reply: Reply | null; stopped?: boolean } | null>(null);
  const [announce, setAnnounce] = useState('');
  const stop = useRef<AbortController | null>(null);
  const [history, setHistory] = useState<Conversation[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);

  const load = async (from: string | null) => {
    const q = `/v1/conversations?limit=${PAGE}${from ? `&cursor=${encodeURIComponent(from)}` : ''}`;
    const r = await api<{ items: Conversation[]; next_cursor: string | null }>('GET', q);
    setHistory((h) => (from ? [...h, ...r.items] : r.items));
    setCursor(r.next_cursor);
  };
  useEffect(() => {
    load(null).catch(setError);
  }, []);

  const send = async (e: Event) => {
    e.preventDefault();
    const message = text.trim();
    if (!message) return;
    setBusy(true);
    setError(null);
    setAnnounce('');
    const ctl = new AbortController();
    stop.current = ctl;
    setLast({ message, text: '', reply: null });
    try {
      const reply = await replyStream(message, (piece) => setLast((l) => l && { ...l, text: l.text + piece }), ctl.signal);
      setLast({ message, text: reply.reply, reply });
      setAnnounce(`The clone replied: ${reply.reply}`);
      setText('');
      await load(null);
    } catch (err) {
      if (ctl.signal.aborted) {
        setLast((l) => l && { ...l, stopped: true });
        setAnnounce('Stopped.');
      } else {
        setLast(null);
        setError(err instanceof ApiError && err.code === 'no_model'
          ? new Error('No trained clone yet: upload a chat first.') : err);
      }
    } finally {
      stop.current = null;
      setBusy(false);
    }
  };

  return (
    <section>
      <h1>Chat with your clone</h1>
      <form class="card" onSubmit={send}>
        <label for="msg">Your message</label>
        <textarea id="msg" rows={3} maxLength={4000} value={text} onInput={(e) => setText(e.currentTarget.value)}
          onKeyDown={(e) => { if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); void send(e); } }} />
        <button type="submit" disabled={busy || !text.trim()}>{busy ? 'The clone is typing…' : 'Send'}</button>
        {busy && <button type="button" class="secondary" onClick={() => stop.current?.abort()}>Stop</button>}
      </form>
      <p class="sr-only" role="status" aria-live="polite" aria-atomic="true">{announce}</p>
      <ErrorBox error={error} />
      {last && (
        <div class="card" data-testid="last-reply" aria-busy={!last.reply && !last.stopped}>
          <p class="bubble me">{last.message}</p>
          <p class="bubble them" data-testid="reply-text">{last.text || (last.reply || last.stopped ? '' : '…')}</p>
          {last.stopped && <p class="muted">Stopped before the reply was complete.</p>}
          {last.reply && (
            <p class="muted">
              Confidence {pct(last.reply.confidence)}
              {last.reply.fallback && <span class="badge">fallback reply: the clone was unsure</span>}
              {last.reply.cached && ' · from the cache'} · {Math.round(last.reply.processing_time_ms)} ms
            </p>
          )}
        </div>
      )}
      <h2>History</h2>
      {history.length === 0 ? <p class="muted">No messages yet.</p> : (
        <ol class="history">
          {history.map((c) => (
            <li key={c.id}>
              <p class="bubble me">{c.message}</p>
              <p class="bubble them">{c.reply}</p>
              <p class="muted">{when(c.created_at)} · confidence {pct(c.confidence)}</p>
            </li>
          ))}
        </ol>
      )}
      {cursor && <button type="button" class="secondary" onClick={() => load(cursor).catch(setError)}>Older messages</button>}
    </section>
  );
}
