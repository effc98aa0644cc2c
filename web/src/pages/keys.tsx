// API keys: create (the key is shown once), list, revoke.
import { useEffect, useState } from 'preact/hooks';
import { api, type ApiKey } from '../api';
import { ErrorBox, when } from './common';

export function Keys() {
  const [keys, setKeys] = useState<ApiKey[]>([]);
  const [name, setName] = useState('');
  const [fresh, setFresh] = useState<{ key_id: string; key: string } | null>(null);
  const [error, setError] = useState<unknown>(null);

  const load = () => api<{ items: ApiKey[] }>('GET', '/v1/keys').then((r) => setKeys(r.items)).catch(setError);
  useEffect(() => {
    void load();
  }, []);

  const create = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      setFresh(await api<{ key_id: string; key: string }>('POST', '/v1/keys', { name: name.trim() || 'dashboard' }));
      setName('');
      await load();
    } catch (err) {
      setError(err);
    }
  };
  const revoke = async (k: ApiKey) => {
    if (!confirm(`Revoke ${k.key_id}? Programs using it stop working at once.`)) return;
    setError(null);
    try {
      await api('DELETE', `/v1/keys/${encodeURIComponent(k.key_id)}`);
      await load();
    } catch (err) {
      setError(err);
    }
  };

  return (
    <section>
      <h1>API keys</h1>
      <form class="card inline" onSubmit={create}>
        <label for="kname">Name of the new key</label>
        <input id="kname" maxLength={64} placeholder="e.g. laptop" value={name} onInput={(e) => setName(e.currentTarget.value)} />
        <button type="submit">Create key</button>
      </form>
      {fresh && (
        <div class="card" role="status">
          <p>Your new key — copy it now, it is <strong>shown only once</strong>:</p>
          <output class="secret" data-testid="new-key">{fresh.key}</output>
        </div>
      )}
      <ErrorBox error={error} />
      <div class="table-scroll">
        <table class="keys">
          <caption class="sr-only">Your API keys</caption>
          <thead><tr><th scope="col">Key</th><th scope="col">Name</th><th scope="col">Created</th><th scope="col">Last used</th><th scope="col">State</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead>
          <tbody>
            {keys.map((k) => (
              <tr key={k.key_id} data-key={k.key_id}>
                <td><code>{k.key_id}</code>{k.current && <span class="badge">this session</span>}</td>
                <td>{k.name ?? '—'}</td>
                <td>{when(k.created_at)}</td>
                <td>{when(k.last_used_at)}</td>
                <td>{k.active ? 'active' : 'revoked'}</td>
                <td>{k.active && !k.current && <button type="button" class="danger" aria-label={`Revoke ${k.key_id}`} onClick={() => revoke(k)}>Revoke</button>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
