// WhatsApp: the linked business numbers with their mode (off/draft/auto), linking a number,
// and the clone's drafts (the message, the suggested reply, confidence, why it waits) to
// send as is, edit then send, or discard. Refreshes itself while a draft is being written or sent.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, ApiError, type WaDraft, type WaLink, type WaMode } from '../api';
import { ErrorBox, pct, when } from './common';

const MODES: { mode: WaMode; label: string }[] = [
  { mode: 'off', label: 'Off — draft nothing' },
  { mode: 'draft', label: 'Draft — I approve' },
  { mode: 'auto', label: 'Auto — send when sure' },
];

const STATUS: Record<WaDraft['status'], string> = {
  generating: 'Writing a reply…',
  pending: 'Waiting for you',
  queued: 'Sending…',
  sent: 'Sent',
  failed: 'Not sent',
  discarded: 'Discarded',
};

function words(e: unknown): unknown {
  if (e instanceof ApiError && e.code === 'outside_window')
    return new Error('This contact last wrote over 24 hours ago: WhatsApp does not allow a free reply any more.');
  return e;
}

function LinkForm({ onLinked }: { onLinked: () => Promise<void> }) {
  const [id, setId] = useState('');
  const [token, setToken] = useState('');
  const [mode, setMode] = useState<WaMode>('draft');
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      await api('POST', '/v1/whatsapp/links', { phone_number_id: id.trim(), access_token: token.trim(), mode });
      setId('');
      setToken('');
      await onLinked();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form class="card" onSubmit={submit}>
      <h2>Link a number</h2>
      <p class="muted">From Meta's developer console: the business number's phone number id and a system-user access token. The token is stored encrypted and never shown again.</p>
      <label for="wa-id">Phone number id</label>
      <input id="wa-id" inputMode="numeric" autoComplete="off" required maxLength={64} value={id} onInput={(e) => setId(e.currentTarget.value)} />
      <label for="wa-token">Access token</label>
      <input id="wa-token" type="password" autoComplete="off" required value={token} onInput={(e) => setToken(e.currentTarget.value)} />
      <label for="wa-mode">Mode</label>
      <select id="wa-mode" value={mode} onChange={(e) => setMode(e.currentTarget.value as WaMode)}>
        {MODES.map((m) => <option key={m.mode} value={m.mode}>{m.label}</option>)}
      </select>
      <ErrorBox error={error} />
      <button type="submit">Link number</button>
    </form>
  );
}

function Draft({ d, onChange }: { d: WaDraft; onChange: (e: unknown) => Promise<void> }) {
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState(d.reply ?? '');
  const [busy, setBusy] = useState(false);
  const box = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    if (editing) box.current?.focus(); // the Edit button is gone: the keyboard goes on in the box
  }, [editing]);
  const open = d.status === 'pending' || d.status === 'failed';
  const act = async (action: string, body?: unknown) => {
    setBusy(true);
    let err: unknown = null;
    try {
      await api('POST', `/v1/whatsapp/drafts/${encodeURIComponent(d.draft_id)}/${action}`, body);
      setEditing(false);
    } catch (e) {
      err = words(e);
    }
    setBusy(false);
    await onChange(err);
  };
  const edId = `reply-${d.draft_id}`;
  return (
    <li class="card draft" data-draft={d.draft_id} data-status={d.status}>
      <p class="draft-head">
        <strong>{d.contact ?? 'unknown contact'}</strong>
        <span class="muted">{when(d.created_at)}</span>
        <span class={`badge st-${d.status}`} data-testid="draft-status">{STATUS[d.status]}</span>
      </p>
      <p class="bubble in"><span class="sr-only">They wrote: </span>{d.message ?? '(no text)'}</p>
      {editing ? (
        <form onSubmit={(e) => { e.preventDefault(); void act('edit', { text, send: true }); }}>
          <label for={edId}>Your reply</label>
          <textarea ref={box} id={edId} rows={3} maxLength={4096} value={text} onInput={(e) => setText(e.currentTarget.value)} />
          <div class="actions">
            <button type="submit" disabled={busy || !text.trim()}>Send edited reply</button>
            <button type="button" class="secondary" onClick={() => setEditing(false)}>Cancel</button>
          </div>
        </form>
      ) : (
        <p class="bubble out"><span class="sr-only">The clone suggests: </span>{d.reply ?? '(no reply yet)'}</p>
      )}
      <p class="muted draft-meta">
        {d.reply !== null && <>Confidence {pct(d.confidence)}. </>}
        {d.reason && <span>{d.reason.charAt(0).toUpperCase() + d.reason.slice(1)}. </span>}
        {d.error && <span class="err-text">WhatsApp refused it: {d.error.message ?? 'error'} ({d.error.code}).</span>}
      </p>
      {open && !editing && (
        <div class="actions">
          <button type="button" disabled={busy || !d.reply} onClick={() => act('approve')}>Send</button>
          <button type="button" class="secondary" disabled={busy} onClick={() => { setText(d.reply ?? ''); setEditing(true); }}>Edit</button>
          <button type="button" class="danger" disabled={busy} onClick={() => act('discard')}>Discard</button>
        </div>
      )}
    </li>
  );
}

export function WhatsApp() {
  const [links, setLinks] = useState<WaLink[] | null>(null);
  const [drafts, setDrafts] = useState<WaDraft[]>([]);
  const [filter, setFilter] = useState('pending');
  const [error, setError] = useState<unknown>(null);
  const [note, setNote] = useState('');

  const loadLinks = async () => setLinks((await api<{ items: WaLink[] }>('GET', '/v1/whatsapp/links')).items);
  const loadDrafts = async () => {
    const q = filter ? `?status=${filter}&limit=100` : '?limit=100';
    setDrafts((await api<{ items: WaDraft[] }>('GET', `/v1/whatsapp/drafts${q}`)).items);
  };
  useEffect(() => {
    loadLinks().catch(setError);
  }, []);
  useEffect(() => {
    loadDrafts().catch(setError);
  }, [filter]);
  // while a reply is being written or sent, look again every 2 s
  const busy = drafts.some((d) => d.status === 'generating' || d.status === 'queued');
  useEffect(() => {
    if (!busy) return;
    const t = setInterval(() => void loadDrafts().catch(setError), 2000);
    return () => clearInterval(t);
  }, [busy, filter]);

  const setMode = async (l: WaLink, mode: string) => {
    setError(null);
    try {
      await api('PUT', `/v1/whatsapp/links/${encodeURIComponent(l.phone_number_id)}/mode`, { mode });
      await loadLinks();
      setNote(`Number ${l.phone_number_id} is now in ${mode} mode.`);
    } catch (e) {
      setError(e);
    }
  };
  const unlink = async (l: WaLink) => {
    if (!confirm(`Unlink ${l.phone_number_id}? The clone stops answering it.`)) return;
    setError(null);
    try {
      await api('DELETE', `/v1/whatsapp/links/${encodeURIComponent(l.phone_number_id)}`);
      await loadLinks();
    } catch (e) {
      setError(e);
    }
  };
  const changed = async (e: unknown) => {
    setError(e);
    await loadDrafts().catch(setError);
  };

  return (
    <section>
      <h1>WhatsApp</h1>
      <ErrorBox error={error} />
      <p class="sr-only" role="status">{note}</p>
      <h2>Your numbers</h2>
      {links && links.length === 0 && <p>No number linked yet. Link your WhatsApp Business number below; the clone then drafts replies to the messages it receives.</p>}
      {links && links.length > 0 && (
        <div class="table-scroll">
          <table class="keys wa-links">
            <caption class="sr-only">Your linked WhatsApp numbers</caption>
            <thead><tr><th scope="col">Phone number id</th><th scope="col">Mode</th><th scope="col" class="linked">Linked</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
            <tbody>
              {links.map((l) => (
                <tr key={l.phone_number_id} data-link={l.phone_number_id}>
                  <td><code>{l.phone_number_id}</code></td>
                  <td>
                    <select aria-label={`Mode of ${l.phone_number_id}`} value={l.mode} onChange={(e) => void setMode(l, e.currentTarget.value)}>
                      {MODES.map((m) => <option key={m.mode} value={m.mode}>{m.label}</option>)}
                    </select>
                  </td>
                  <td class="linked">{when(l.created_at)}</td>
                  <td><button type="button" class="secondary" aria-label={`Unlink ${l.phone_number_id}`} onClick={() => unlink(l)}>Unlink</button></td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <h2>Drafts</h2>
      <div class="inline drafts-bar">
        <label for="wa-filter">Show</label>
        <select id="wa-filter" value={filter} onChange={(e) => setFilter(e.currentTarget.value)}>
          <option value="pending">Waiting for me</option>
          <option value="">All</option>
          <option value="sent">Sent</option>
          <option value="failed">Not sent</option>
          <option value="discarded">Discarded</option>
        </select>
        <button type="button" class="secondary" onClick={() => void loadDrafts().catch(setError)}>Refresh</button>
      </div>
      {drafts.length === 0 ? <p class="muted">No drafts here.</p> : (
        <ul class="drafts" aria-live="polite">
          {drafts.map((d) => <Draft key={`${d.draft_id}:${d.status}:${d.updated_at}`} d={d} onChange={changed} />)}
        </ul>
      )}
      <LinkForm onLinked={loadLinks} />
    </section>
  );
}
