// Charts of the style profile and the fidelity report: uPlot for the distributions, small
// semantic HTML for the rest (a heat map table, labelled bars), each with a text
// alternative so a screen reader gets the same facts.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

const GREEN = '#047857';

interface BarsProps {
  title: string;
  labels: string[];
  values: number[];
  unit: string;
  summary: string;
}

/** A uPlot bar chart of values over labelled categories, sized to its container. */
export function BarChart({ title, labels, values, unit, summary }: BarsProps) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const xs = labels.map((_, i) => i);
    const opts: uPlot.Options = {
      width: Math.max(260, el.clientWidth),
      height: 200,
      legend: { show: false },
      cursor: { show: false },
      scales: { x: { time: false, range: [-0.6, labels.length - 0.4] } },
      axes: [
        { values: (_u, splits) => splits.map((v) => labels[v] ?? ''), splits: () => xs, gap: 4, size: 36 },
        { label: unit, size: 56 },
      ],
      series: [{}, { label: title, fill: GREEN, stroke: GREEN, paths: uPlot.paths.bars!({ size: [0.7, 48] }), points: { show: false } }],
    };
    const plot = new uPlot(opts, [xs, values], el);
    const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(260, el.clientWidth), height: 200 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [labels.join('|'), values.join('|')]);
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div ref={box} role="img" aria-label={`${title}: ${summary}`} />
    </figure>
  );
}

const DAYS = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];

/** Activity by weekday and hour: a table whose cells are shaded by share of messages. */
export function HeatMap({ cells, hours, weekdays }: { cells?: number[]; hours: number[]; weekdays: number[] }) {
  // older profiles have only the two margins: their product is the best estimate
  const grid = cells && cells.length === 168 ? cells : weekdays.flatMap((d) => hours.map((h) => d * h));
  const max = Math.max(...grid, 1e-9);
  const peak = grid.indexOf(max);
  return (
    <figure class="chart">
      <figcaption>
        When they write (weekday × hour, UTC){cells ? '' : ' — estimated from the hour and weekday patterns'}
      </figcaption>
      <div class="heat-scroll">
        <table class="heat" aria-describedby="heat-summary">
          <thead>
            <tr>
              <th scope="col"><span class="sr-only">Day</span></th>
              {Array.from({ length: 24 }, (_, h) => (
                <th scope="col" key={h}>{h % 3 === 0 ? h : <span class="sr-only">{h}</span>}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {DAYS.map((d, di) => (
              <tr key={d}>
                <th scope="row">{d}</th>
                {Array.from({ length: 24 }, (_, h) => {
                  const v = grid[di * 24 + h];
                  const pct = (v * 100).toFixed(1);
                  return (
                    <td key={h} class="cell" data-level={Math.round((v / max) * 5)} title={`${d} ${h}:00 — ${pct}%`}>
                      <span class="sr-only">{pct}%</span>
                    </td>
                  );
                })}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <p id="heat-summary" class="muted">
        Busiest: {DAYS[Math.floor(peak / 24)]} around {peak % 24}:00. Darker means more messages.
      </p>
    </figure>
  );
}

/** Horizontal bars with their values written out (shares 0..1 or raw numbers). */
export function Bars({ title, items, format, scale }: {
  title: string;
  items: { label: string; value: number }[];
  format: (v: number) => string;
  scale?: number; // the value of a full bar; default: the largest value
}) {
  const max = scale ?? Math.max(...items.map((i) => i.value), 1e-9);
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <ul class="bars">
        {items.map((i) => (
          <li key={i.label}>
            <span class="bar-label">{i.label}</span>
            <span class="bar-track" aria-hidden="true">
              <span class="bar-fill" style={{ width: `${Math.min(1, i.value / max) * 100}%` }} />
            </span>
            <span class="bar-value">{format(i.value)}</span>
          </li>
        ))}
      </ul>
    </figure>
  );
}
