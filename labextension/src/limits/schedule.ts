/**
 * When the Lab warns before the runtime limit, and how it words the time left (pure logic).
 */

/** What the server says of its limit (GET condorhub/api/limits). */
export interface ILimits {
  /** Epoch seconds at which HTCondor ends the server; null: no runtime limit (login node). */
  deadline: number | null;
  /** Seconds before the deadline to warn at, largest first (e.g. [900, 300]). */
  warnings: number[];
  /** The server's clock when it answered (epoch seconds): the browser's may be off. */
  now: number;
}

/** One warning to show: `inSeconds` from now, saying `left` seconds remain then. */
export interface IWarningTime {
  inSeconds: number;
  before: number;
}

/**
 * The warnings still to show, given the server's `now`. A warning whose time has passed is dropped,
 * except the latest passed one, shown at once (a Lab opened 10 min before the end gets the 15 min
 * warning now, with the true time left, and the 5 min one later).
 */
export function warningTimes(limits: ILimits): IWarningTime[] {
  if (!limits.deadline) {
    return [];
  }
  const left = limits.deadline - limits.now;
  if (left <= 0) {
    return [];
  }
  const sorted = [...limits.warnings].filter(w => w > 0).sort((a, b) => b - a);
  const due = sorted.filter(w => w >= left);
  const later = sorted.filter(w => w < left);
  const times = later.map(w => ({ inSeconds: left - w, before: w }));
  if (due.length) {
    times.unshift({ inSeconds: 0, before: due[due.length - 1] });
  }
  return times;
}

/** Time left as the hub's home page writes it: "14 min 58 s", "1 h 5 min" (seconds only in the last hour). */
export function words(seconds: number): string {
  let left = Math.max(Math.round(seconds), 0);
  if (left >= 3600) {
    left -= left % 60;
  }
  const parts: string[] = [];
  const units: [string, number][] = [
    ['d', 86400],
    ['h', 3600],
    ['min', 60]
  ];
  for (const [unit, size] of units) {
    if (left >= size) {
      parts.push(`${Math.floor(left / size)} ${unit}`);
      left %= size;
    }
  }
  if (left || !parts.length) {
    parts.push(`${left} s`);
  }
  return parts.join(' ');
}

/** The notification's text (JupyterLab cuts at 140 characters). */
export function warningText(secondsLeft: number): string {
  return `Your server stops in ${words(secondsLeft)}: its runtime limit. Save your work now (notebooks, checkpoints).`;
}
