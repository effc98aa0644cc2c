// The dashboard's calls to the WhatStyle REST API: the session cookie travels by itself
// (same origin), state-changing calls carry the session's CSRF token, and every failure
// becomes an ApiError whose message a person can read.

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
  ) {
    super(message);
  }
}

let csrf = '';
export function setCsrf(token: string): void {
  csrf = token;
}

const friendly: Record<number, string> = {
  0: 'The server cannot be reached. Check your connection and try again.',
  413: 'The file is too big for this server.',
  429: 'Too many requests right now. Wait a minute and try again.',
  502: 'The clone failed to answer. Try again in a moment.',
  503: 'The server is busy or unavailable. Try again in a moment.',
};

function toError(status: number, text: string): ApiError {
  try {
    const body = JSON.parse(text) as { error?: { code?: string; message?: string } };
    if (body.error?.message) {
      const msg = status >= 500 && friendly[status] ? `${friendly[status]} (${body.error.message})` : body.error.message;
      return new ApiError(status, body.error.code ?? 'error', msg);
    }
  } catch {
    /* not JSON: fall through */
  }
  return new ApiError(status, 'error', friendly[status] ?? `The server answered ${status}.`);
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
    });
  } catch {
    throw new ApiError(0, 'network', friendly[0]);
  }
  const text = await res.text();
  if (!res.ok) throw toError(res.status, text);
  return (text ? JSON.parse(text) : {}) as T;
}

/**
 * POST /v1/reply as Server-Sent Events: onToken gets each piece of the reply as the clone
 * generates it; resolves with the final reply (the "done" event: its text replaces the pieces
 * when it is the fallback). signal aborts (the Stop button): the server stops generating.
 */
export async function replyStream(message: string, onToken: (piece: string) => void, signal: AbortSignal): Promise<Reply> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json', Accept: 'text/event-stream' };
  if (csrf) headers['X-CSRF-Token'] = csrf;
  let res: Response;
  try {
    res = await fetch('/v1/reply', { method: 'POST', headers, body: JSON.stringify({ message, stream: true }), credentials: 'same-origin', signal });
  } catch (e) {
    if (signal.aborted) throw e;
    throw new ApiError(0, 'network', friendly[0]);
  }
  if (!res.ok || !res.body) throw toError(res.status, await res.text());
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let end: number;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (!data.length) continue;
      const body = JSON.parse(data.join('\n'));
      if (event === 'token') onToken((body as { text: string }).text);
      else if (event === 'done') return body as Reply;
      else if (event === 'error') throw toError(502, JSON.stringify(body));
    }
  }
  throw new ApiError(0, 'network', 'The reply stopped before it was complete. Try again.');
}
/** Sends a file with upload progress (fetch has none): resolves with the parsed answer. */
export function upload<T>(path: string, file: File, onProgress: (share: number) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', path);
    xhr.setRequestHeader('Content-Type', file.name.toLowerCase().endsWith('.zip') ? 'application/zip' : 'text/plain');
    if (csrf) xhr.setRequestHeader('X-CSRF-Token', csrf);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) resolve(JSON.parse(xhr.responseText) as T);
      else reject(toError(xhr.status, xhr.responseText));
    };
    xhr.onerror = () => reject(new ApiError(0, 'network', friendly[0]));
    xhr.send(file);
  });
}

export interface Session {
  user_id: string;
  name: string;
  role: string;
  csrf_token: string;
  max_export_bytes?: number;
  model_version?: string | null;
  key?: string;
}

export interface Job {
  job_id: string;
  status: 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';
  progress: number;
  samples_processed?: number;
  created_at: number | null;
  started_at?: number | null;
  completed_at: number | null;
  params: { persona?: string; budget_s?: number } | null;
  metrics?: Fidelity | null;
  error?: string | null;
}

export interface SetScores {
  style_distance: number;
  verifier_accuracy: number;
  relevance: number;
  attribution: number;
  mean_chars: number;
}

export interface Fidelity {
  persona: string;
  evaluated: number;
  loss?: { model_nats_per_byte: number; base_nats_per_byte: number; lift: number };
  sets: { clone: SetScores; same_person_random: SetScores; other_participant: SetScores; real: SetScores };
  verdict?: { pass: boolean; criteria: { name: string; pass: boolean; value: number; bound: number; rule: string }[] };
  beats_baselines?: boolean;
}

export interface Dist {
  count: number;
  mean: number;
  p10: number;
  p25: number;
  p50: number;
  p75: number;
  p90: number;
}

export interface Profile {
  messages: number;
  length: { chars: Dist; words: Dist; histogram: number[] };
  emoji: { per_message: number; messages_with_emoji: number; favourites: { emoji: string; count: number; share: number }[] };
  punctuation: Record<string, number>;
  casing: Record<string, number>;
  response_time_s: Dist;
  active_hours: number[];
  active_weekdays: number[];
  active_weekday_hours?: number[];
  signature_phrases: { phrase: string; count: number; score: number }[];
  typical_short_reply?: { text: string; count: number } | null;
}

export interface Reply {
  reply: string;
  confidence: number;
  fallback: boolean;
  cached: boolean;
  model_version: string;
  processing_time_ms: number;
}

export interface Conversation {
  id: number;
  message: string;
  reply: string;
  confidence: number;
  created_at: number;
}

export interface ApiKey {
  key_id: string;
  name: string | null;
  active: boolean;
  current: boolean;
  created_at: number;
  last_used_at: number | null;
}

export type WaMode = 'off' | 'draft' | 'auto';

export interface WaLink {
  phone_number_id: string;
  mode: WaMode;
  clone: { user_id: string; model_version: string | null };
  created_at: number;
  updated_at: number;
}

export interface WaDraft {
  draft_id: string;
  phone_number_id: string;
  contact: string | null;
  message_id: string;
  message: string | null;
  mode: WaMode;
  status: 'generating' | 'pending' | 'queued' | 'sent' | 'failed' | 'discarded';
  reply: string | null;
  confidence: number;
  reason: string | null;
  error: { code: number; message: string | null } | null;
  sent_message_id: string | null;
  attempts: number;
  created_at: number;
  updated_at: number;
}
