// The fidelity report as a chart and one plain sentence: how close the clone's replies
// are to the person's real ones, against a random reply of theirs and another person's.
import type { Fidelity } from '../api';
import { Bars } from '../charts';
import { pct } from './common';

export function FidelityReport({ f }: { f: Fidelity }) {
  const s = f.sets;
  const criteria = f.verdict?.criteria ?? [];
  const passed = criteria.filter((c) => c.pass).length;
  // closeness in style: 1 - distance relative to another participant's distance
  const ref = Math.max(s.other_participant.style_distance, 1e-9);
  const close = (d: number) => Math.max(0, 1 - d / ref);
  const verdict = f.beats_baselines
    ? `The clone writes like ${f.persona}: closer than a random reply of theirs.`
    : s.clone.style_distance < s.other_participant.style_distance
      ? `The clone sounds more like ${f.persona} than like another person in the chat, but not yet as close as ${f.persona}'s own replies.`
      : `The clone does not yet sound like ${f.persona}; train longer or upload a longer chat.`;
  return (
    <section class="card" aria-labelledby="fid-h">
      <h2 id="fid-h">How close is the clone?</h2>
      <p class="verdict" data-testid="verdict">{verdict} It passed {passed} of {criteria.length} checks on {f.evaluated} held-out messages.</p>
      <div class="grid2">
        <Bars title="Style closeness to the real person (0% = as far as another person)" format={(v) => pct(v)} scale={1}
          items={[
            { label: 'Clone', value: close(s.clone.style_distance) },
            { label: `${f.persona}, random reply`, value: close(s.same_person_random.style_distance) },
            { label: 'Another person', value: close(s.other_participant.style_distance) },
          ]} />
        <Bars title="Replies that answer the message (relevance)" format={(v) => v.toFixed(2)}
          items={[
            { label: 'Clone', value: s.clone.relevance },
            { label: `${f.persona}, real reply`, value: s.real.relevance },
            { label: `${f.persona}, random reply`, value: s.same_person_random.relevance },
          ]} />
        <Bars title="A detector tells clone from real (50% = cannot)" format={(v) => pct(v)} scale={1}
          items={[
            { label: 'Clone', value: s.clone.verifier_accuracy },
            { label: 'Another person', value: s.other_participant.verifier_accuracy },
          ]} />
      </div>
      <details>
        <summary>All checks</summary>
        <ul class="checks">
          {criteria.map((c) => (
            <li key={c.name}>{c.pass ? '✔ passed' : '✘ not passed'} — {c.name.replace(/_/g, ' ')}: {c.value} ({c.rule})</li>
          ))}
        </ul>
      </details>
    </section>
  );
}
