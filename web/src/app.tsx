// The dashboard shell: the session (restored from the cookie on load), the navigation and
// hash routes (#/upload, #/training, #/profile, #/chat, #/keys, #/whatsapp, #/data).
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, setCsrf, type Session } from './api';
import { SignIn } from './pages/signin';
import { Upload } from './pages/upload';
import { Training } from './pages/training';
import { ProfilePage } from './pages/profile';
import { Chat } from './pages/chat';
import { Keys } from './pages/keys';
import { Data } from './pages/data';
import { WhatsApp } from './pages/whatsapp';

const PAGES = [
  { path: 'upload', title: 'Upload' },
  { path: 'training', title: 'Training' },
  { path: 'profile', title: 'Style' },
  { path: 'chat', title: 'Chat' },
  { path: 'keys', title: 'API keys' },
  { path: 'whatsapp', title: 'WhatsApp' },
  { path: 'data', title: 'My data' },
] as const;

function route(): string {
  const r = location.hash.replace(/^#\/?/, '');
  return PAGES.some((p) => p.path === r) ? r : 'upload';
}

export function App() {
  const [session, setSession] = useState<Session | null | undefined>(undefined);
  const [page, setPage] = useState(route());

  useEffect(() => {
    const onHash = () => setPage(route());
    addEventListener('hashchange', onHash);
    api<Session>('GET', '/v1/session')
      .then((s) => {
        setCsrf(s.csrf_token);
        setSession(s);
      })
      .catch(() => setSession(null));
    return () => removeEventListener('hashchange', onHash);
  }, []);

  useEffect(() => {
    const title = PAGES.find((p) => p.path === page)?.title ?? '';
    document.title = session ? `${title} · WhatStyle` : 'Sign in · WhatStyle';
    document.getElementById('main')?.focus();
  }, [page, session]);

  const signedIn = (s: Session) => {
    setCsrf(s.csrf_token);
    setSession(s);
  };
  const signedOut = () => {
    setCsrf('');
    setSession(null);
    location.hash = '';
  };
  const signOut = async () => {
    try {
      await api('DELETE', '/v1/session');
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 401) throw e;
    }
    signedOut();
  };

  if (session === undefined) return <main id="main" tabIndex={-1} class="loading">Loading…</main>;
  if (session === null)
    return (
      <>
        <header class="top"><span class="brand">WhatStyle</span></header>
        <main id="main" tabIndex={-1}><SignIn onSignedIn={signedIn} /></main>
      </>
    );
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById('main')?.focus(); }}>Skip to content</a>
      <header class="top">
        <span class="brand">WhatStyle</span>
        <nav aria-label="Main">
          <ul>
            {PAGES.map((p) => (
              <li key={p.path}>
                <a href={`#/${p.path}`} aria-current={page === p.path ? 'page' : undefined}>{p.title}</a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <span>{session.name}</span>
          <button type="button" class="secondary" onClick={signOut}>Sign out</button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {page === 'upload' && <Upload maxBytes={session.max_export_bytes} />}
        {page === 'training' && <Training />}
        {page === 'profile' && <ProfilePage />}
        {page === 'chat' && <Chat />}
        {page === 'keys' && <Keys />}
        {page === 'whatsapp' && <WhatsApp />}
        {page === 'data' && <Data onDeleted={signedOut} />}
      </main>
    </>
  );
}
