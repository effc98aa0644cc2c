// Sign in with an API key, or sign up where the server allows it (the first key is shown
// once, here).
import { useState } from 'preact/hooks';
import { api, type Session } from '../api';
import { ErrorBox } from './common';

export function SignIn({ onSignedIn }: { onSignedIn: (s: Session) => void }) {
  const [key, setKey] = useState('');
  const [name, setName] = useState('');
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const [created, setCreated] = useState<Session | null>(null);

  const signIn = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await api<Session>('POST', '/v1/session', { key: key.trim() }));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const signUp = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      setCreated(await api<Session>('POST', '/v1/signup', { name: name.trim() }));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  if (created)
    return (
      <section class="card narrow">
        <h1>Welcome, {created.name}</h1>
        <p>This is your API key. It is shown <strong>only once</strong>: keep it somewhere safe to sign in again.</p>
        <output class="secret" aria-label="Your new API key">{created.key}</output>
        <button type="button" onClick={() => onSignedIn(created)}>Continue</button>
      </section>
    );

  return (
    <div class="signin">
      <section class="card narrow">
        <h1>Sign in</h1>
        <form onSubmit={signIn}>
          <label for="key">API key</label>
          <input id="key" type="password" autoComplete="current-password" required placeholder="ws_live_…"
            value={key} onInput={(e) => setKey(e.currentTarget.value)} />
          <button type="submit" disabled={busy}>Sign in</button>
        </form>
      </section>
      <section class="card narrow">
        <h2>New here?</h2>
        <form onSubmit={signUp}>
          <label for="name">Your name</label>
          <input id="name" autoComplete="nickname" required maxLength={64} value={name}
            onInput={(e) => setName(e.currentTarget.value)} />
          <button type="submit" class="secondary" disabled={busy}>Create an account</button>
        </form>
      </section>
      <ErrorBox error={error} />
    </div>
  );
}
