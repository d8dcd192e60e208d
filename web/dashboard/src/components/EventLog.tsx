import { memo } from 'preact/compat';
import { useMemo, useState } from 'preact/hooks';
import { clock } from '../format';
import type { Activity, Level } from '../types';

const rank: Record<Level, number> = { info: 0, warn: 1, error: 2 };

/** The activity log, newest first, coloured by level; filter by level. */
export const EventLog = memo(function EventLog({ entries }: { entries: readonly Activity[] }) {
  const [min, setMin] = useState<Level>('info');
  const shown = useMemo(() => {
    const out: Activity[] = [];
    for (let i = entries.length - 1; i >= 0 && out.length < 300; i--) {
      const e = entries[i]!;
      if ((rank[e.level] ?? 0) >= rank[min]) out.push(e);
    }
    return out;
  }, [entries, min]);
  return (
    <section class="panel log" aria-labelledby="log-title">
      <header class="panel-head">
        <h2 id="log-title">Activity</h2>
        <div class="seg" role="group" aria-label="Minimum level">
          {(['info', 'warn', 'error'] as const).map((l) => (
            <button type="button" key={l} class={min === l ? 'on' : ''} aria-pressed={min === l} onClick={() => setMin(l)}>
              {l === 'info' ? 'all' : `${l}+`}
            </button>
          ))}
        </div>
      </header>
      {shown.length === 0 ? (
        <p class="empty">Nothing yet: registrations, health flips, drains and placements show up here.</p>
      ) : (
        <ol class="log-list" aria-live="polite">
          {shown.map((e, i) => (
            <li key={`${e.at}${i}${e.message}`} class={`lvl-${e.level}`} data-level={e.level} data-kind={e.kind}>
              <time dateTime={e.at}>{clock(e.at)}</time>
              <span class="tag">
                {e.pool} · {e.kind}
              </span>
              <span class="msg">{e.message}</span>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
});
