// Upload a WhatsApp export (.txt or .zip; drag and drop or choose), see who is in it, pick
// whose style to learn and the training budget, then start training.
import { useRef, useState } from 'preact/hooks';
import { upload, type Job } from '../api';
import { ErrorBox } from './common';

interface People {
  messages: number;
  participants: { name: string; messages: number }[];
}

const BUDGETS = [
  { s: 5, label: 'Quick test (5 seconds)' },
  { s: 60, label: 'Short (1 minute)' },
  { s: 600, label: 'Standard (10 minutes)' },
  { s: 3600, label: 'Thorough (1 hour)' },
];

export function Upload({ maxBytes }: { maxBytes?: number }) {
  const [file, setFile] = useState<File | null>(null);
  const [people, setPeople] = useState<People | null>(null);
  const [persona, setPersona] = useState('');
  const [budget, setBudget] = useState(600);
  const [progress, setProgress] = useState<number | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [over, setOver] = useState(false);
  const input = useRef<HTMLInputElement>(null);

  const choose = async (f: File | undefined) => {
    setError(null);
    setPeople(null);
    setPersona('');
    if (!f) return;
    if (!/\.(txt|zip)$/i.test(f.name)) {
      setError(new Error(`“${f.name}” is not a WhatsApp export: choose the .txt or .zip file that “Export chat” made.`));
      return;
    }
    if (maxBytes && f.size > maxBytes) {
      setError(new Error(`“${f.name}” is ${(f.size / 1048576).toFixed(1)} MB; this server takes exports up to ${(maxBytes / 1048576).toFixed(0)} MB. Export the chat without media.`));
      return;
    }
    setFile(f);
    setProgress(0);
    try {
      const p = await upload<People>('/v1/exports/inspect', f, setProgress);
      setPeople(p);
      const top = [...p.participants].sort((a, b) => b.messages - a.messages)[0];
      setPersona(top?.name ?? '');
    } catch (err) {
      setError(err);
    } finally {
      setProgress(null);
    }
  };

  const start = async (e: Event) => {
    e.preventDefault();
    if (!file || !persona) return;
    setError(null);
    setProgress(0);
    try {
      await upload<Job>(`/v1/exports?persona=${encodeURIComponent(persona)}&budget=${budget}`, file, setProgress);
      location.hash = '#/training';
    } catch (err) {
      setError(err);
    } finally {
      setProgress(null);
    }
  };

  return (
    <section>
      <h1>Teach the clone your style</h1>
      <p class="muted">In WhatsApp, open a chat, choose “Export chat” (without media) and upload the file here.</p>
      <div class={`drop${over ? ' over' : ''}`}
        onDragOver={(e) => { e.preventDefault(); setOver(true); }}
        onDragLeave={() => setOver(false)}
        onDrop={(e) => { e.preventDefault(); setOver(false); void choose(e.dataTransfer?.files[0]); }}>
        <p>Drop the export here, or</p>
        <label for="file" class="button secondary">Choose a file</label>
        <input id="file" ref={input} type="file" accept=".txt,.zip,text/plain,application/zip" class="sr-only"
          onChange={(e) => void choose(e.currentTarget.files?.[0])} />
        {file && <p class="muted">{file.name} · {(file.size / 1024).toFixed(0)} KB</p>}
      </div>
      {progress !== null && (
        <div class="progress-row">
          <label for="upload-progress">Uploading</label>
          <progress id="upload-progress" max={1} value={progress} />
          <span>{Math.round(progress * 100)}%</span>
        </div>
      )}
      <ErrorBox error={error} />
      {people && (
        <form class="card" onSubmit={start}>
          <fieldset>
            <legend>Whose style should the clone learn? ({people.messages} messages in this chat)</legend>
            {people.participants.map((p) => (
              <label key={p.name} class="choice">
                <input type="radio" name="persona" value={p.name} checked={persona === p.name}
                  onChange={() => setPersona(p.name)} />
                {p.name} <span class="muted">· {p.messages} messages</span>
              </label>
            ))}
          </fieldset>
          <label for="budget">Training time</label>
          <select id="budget" value={budget} onChange={(e) => setBudget(Number(e.currentTarget.value))}>
            {BUDGETS.map((b) => <option key={b.s} value={b.s}>{b.label}</option>)}
          </select>
          <button type="submit" disabled={!persona || progress !== null}>Start training</button>
        </form>
      )}
    </section>
  );
}
