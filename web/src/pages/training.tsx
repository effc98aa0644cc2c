// Live training progress of the latest job (server-sent events from
// /v1/training-jobs/{id}/events; coming back to the page picks the stream up again) and,
// when it is done, the fidelity report.
import { useEffect, useState } from 'preact/hooks';
import { api, type Job } from '../api';
import { ErrorBox, when } from './common';
import { FidelityReport } from './fidelity';

function timeLeft(j: Job): string {
  if (j.status !== 'running' || !j.started_at || j.progress <= 0.02) return j.status === 'queued' ? 'waiting for a free trainer' : '—';
  const elapsed = (Date.now() - j.started_at) / 1000;
  const left = Math.max(0, (elapsed * (1 - j.progress)) / j.progress);
  return left < 90 ? `about ${Math.ceil(left)} s` : `about ${Math.ceil(left / 60)} min`;
}

export function Training() {
  const [job, setJob] = useState<Job | null | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    let es: EventSource | null = null;
    let closed = false;
    api<{ items: Job[] }>('GET', '/v1/training-jobs')
      .then(({ items }) => {
        const latest = items[0] ?? null;
        if (closed) return;
        setJob(latest);
        if (!latest) return;
        es = new EventSource(`/v1/training-jobs/${encodeURIComponent(latest.job_id)}/events`);
        es.addEventListener('job', (ev) => {
          const j = JSON.parse((ev as MessageEvent<string>).data) as Job;
          setJob(j);
          if (j.status !== 'queued' && j.status !== 'running') es?.close();
        });
        es.onerror = () => {
          // the stream ends after a final state; otherwise EventSource retries by itself
          if (es?.readyState === EventSource.CLOSED) setError(new Error('Lost the connection to the server; reload to see the progress.'));
        };
      })
      .catch(setError);
    return () => {
      closed = true;
      es?.close();
    };
  }, []);

  if (job === undefined) return <section><h1>Training</h1><ErrorBox error={error} /><p>Loading…</p></section>;
  if (job === null)
    return (
      <section>
        <h1>Training</h1>
        <p>Nothing trained yet. <a href="#/upload">Upload a chat</a> to start.</p>
      </section>
    );
  const persona = job.params?.persona ?? 'the persona';
  const statusText: Record<Job['status'], string> = {
    queued: 'Waiting to start',
    running: 'Training',
    completed: 'Done',
    failed: 'Training failed',
    cancelled: 'Cancelled',
  };
  return (
    <section>
      <h1>Training the clone of {persona}</h1>
      <div class="card">
        <p class="status" aria-live="polite">
          <strong data-testid="job-status">{statusText[job.status]}</strong>
          {job.status === 'running' && ` · ${Math.round(job.progress * 100)}%`}
        </p>
        <progress aria-label="Training progress" max={1} value={job.progress} />
        <dl class="facts">
          <dt>Examples learned from</dt><dd>{job.samples_processed ?? 0}</dd>
          <dt>Time left</dt><dd>{timeLeft(job)}</dd>
          <dt>Started</dt><dd>{when(job.started_at)}</dd>
          <dt>Finished</dt><dd>{when(job.completed_at)}</dd>
          {job.metrics?.loss && (<><dt>Loss (nats per byte)</dt><dd>{job.metrics.loss.model_nats_per_byte.toFixed(3)} (untrained: {job.metrics.loss.base_nats_per_byte.toFixed(3)})</dd></>)}
        </dl>
        {job.status === 'failed' && <p class="error" role="alert">The training failed: {job.error ?? 'no reason given'}. Try again with another export or a longer budget.</p>}
      </div>
      <ErrorBox error={error} />
      {job.status === 'completed' && job.metrics && <FidelityReport f={job.metrics} />}
    </section>
  );
}
