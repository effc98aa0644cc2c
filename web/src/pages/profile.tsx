// The style profile as pictures: when they write, how long, which emoji, punctuation and
// casing habits, how fast they answer, and their signature phrases.
import { useEffect, useState } from 'preact/hooks';
import { api, ApiError, type Profile } from '../api';
import { BarChart, Bars, HeatMap } from '../charts';
import { ErrorBox, pct } from './common';

const LEN_LABELS = ['≤5', '6–10', '11–20', '21–40', '41–80', '81–160', '161–320', '>320'];

function dur(s: number): string {
  return s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`;
}

export function ProfilePage() {
  const [data, setData] = useState<{ model_version: string; profile: Profile } | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    api<{ model_version: string; profile: Profile }>('GET', '/v1/style-profile').then(setData).catch(setError);
  }, []);
  if (error instanceof ApiError && error.code === 'no_model')
    return <section><h1>Style</h1><p>No trained clone yet. <a href="#/upload">Upload a chat</a> first.</p></section>;
  if (!data) return <section><h1>Style</h1><ErrorBox error={error} />{!error && <p>Loading…</p>}</section>;
  const p = data.profile;
  const rt = p.response_time_s;
  return (
    <section>
      <h1>Your style</h1>
      <p class="muted">From {p.messages} messages · model {data.model_version}</p>
      <HeatMap cells={p.active_weekday_hours} hours={p.active_hours} weekdays={p.active_weekdays} />
      <div class="grid2">
        <BarChart title="Message length (characters)" labels={LEN_LABELS} values={p.length.histogram.map((v) => v * 100)}
          unit="% of messages" summary={`half are ${p.length.chars.p50} characters or shorter; the average is ${p.length.chars.mean.toFixed(0)}`} />
        <BarChart title="Time to answer" labels={['10%', '25%', 'half', '75%', '90%']}
          values={[rt.p10, rt.p25, rt.p50, rt.p75, rt.p90].map((s) => s / 60)} unit="minutes"
          summary={`half of the answers come within ${dur(rt.p50)}, 90% within ${dur(rt.p90)}`} />
        <Bars title={`Favourite emoji (${p.emoji.per_message.toFixed(2)} per message)`} format={(v) => pct(v)}
          items={p.emoji.favourites.slice(0, 8).map((e) => ({ label: e.emoji, value: e.share }))} />
        <Bars title="Punctuation and casing (share of messages)" format={(v) => pct(v)} scale={1}
          items={[
            { label: 'all lower case', value: p.casing.all_lower ?? 0 },
            { label: 'starts with a capital', value: p.casing.starts_upper ?? 0 },
            { label: 'CAPS for emphasis', value: p.casing.caps_for_emphasis ?? 0 },
            { label: 'no final punctuation', value: p.punctuation.ends_without_punctuation ?? 0 },
            { label: 'ends with a period', value: p.punctuation.ends_with_period ?? 0 },
            { label: 'questions', value: Math.min(1, p.punctuation.questions_per_message ?? 0) },
            { label: 'exclamations', value: Math.min(1, p.punctuation.exclamations_per_message ?? 0) },
            { label: '“…”', value: p.punctuation.ellipsis ?? 0 },
          ]} />
        <Bars title="Signature phrases (times used)" format={(v) => String(v)}
          items={p.signature_phrases.slice(0, 8).map((s) => ({ label: `“${s.phrase}”`, value: s.count }))} />
      </div>
      {p.typical_short_reply && <p>Their typical short reply: <q>{p.typical_short_reply.text}</q></p>}
    </section>
  );
}
