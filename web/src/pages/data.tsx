// Export all my data (a JSON download) or delete all of it, after a typed confirmation.
import { useState } from 'preact/hooks';
import { api } from '../api';
import { ErrorBox } from './common';

export function Data({ onDeleted }: { onDeleted: () => void }) {
  const [confirmText, setConfirmText] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const exportAll = async () => {
    setError(null);
    try {
      const data = await api<unknown>('GET', '/v1/me/export');
      const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' }));
      const a = document.createElement('a');
      a.href = url;
      a.download = 'whatstyle-export.json';
      a.click();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (err) {
      setError(err);
    }
  };
  const deleteAll = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await api('DELETE', '/v1/me');
      onDeleted();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section>
      <h1>My data</h1>
      <div class="card">
        <h2>Export</h2>
        <p>Download everything stored about you (account, keys, training jobs, conversations) as one JSON file.</p>
        <button type="button" class="secondary" onClick={exportAll}>Download my data</button>
      </div>
      <form class="card" onSubmit={deleteAll}>
        <h2>Delete everything</h2>
        <p>This deletes your account, keys, uploaded chats, trained clone and conversations, for good.</p>
        <label for="confirm">Type <strong>delete</strong> to confirm</label>
        <input id="confirm" autoComplete="off" value={confirmText} onInput={(e) => setConfirmText(e.currentTarget.value)} />
        <button type="submit" class="danger" disabled={busy || confirmText.trim().toLowerCase() !== 'delete'}>Delete all my data</button>
      </form>
      <ErrorBox error={error} />
    </section>
  );
}
