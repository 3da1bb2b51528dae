/**
 * How jobs read in the panel: states in words, times, profiles. Pure functions, no DOM.
 */
import { IJob, IProfile, JobState } from './api';

/** States in which a job still holds a place in the queue: it can be cancelled, and its output may grow. */
export const ACTIVE_STATES: ReadonlySet<JobState> = new Set<JobState>([
  'queued',
  'running',
  'held',
  'suspended'
]);
export const isActive = (job: { state: JobState }) =>
  ACTIVE_STATES.has(job.state);

/** The state as a short word for the badge. */
export function stateWord(job: IJob): string {
  if (job.state === 'done' && job.exit_code !== null && job.exit_code !== 0) {
    return 'failed';
  }
  return job.state;
}

/** What happened, in a sentence, for the states where the word alone does not say it. */
export function stateDetail(job: IJob): string | null {
  switch (job.state) {
    case 'held':
      // HTCondor's own reason (a policy, a missing file, a user's hold), then what the user can do.
      return `${(job.hold_reason || 'No reason given').replace(/\.+$/, '')}. Release it to run again (once the cause is fixed), or cancel it.`;
    case 'done':
      return job.exit_code === null
        ? 'Finished.'
        : job.exit_code === 0
          ? 'Finished with exit code 0.'
          : `Finished with exit code ${job.exit_code}: look at its error output.`;
    case 'failed':
      return job.exit_code === null
        ? 'Failed.'
        : `Failed with exit code ${job.exit_code}.`;
    case 'removed':
      return 'Cancelled.';
    case 'suspended':
      return 'Suspended by the pool; it continues when the node is free again.';
    default:
      return null;
  }
}

const pad = (n: number) => String(n).padStart(2, '0');

/** A moment as the clock shows it: "14:03:09" today, "Nov 30 14:03" before. */
export function clock(epoch: number, now = Date.now() / 1000): string {
  const d = new Date(epoch * 1000);
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (new Date(now * 1000).toDateString() === d.toDateString()) {
    return `${time}:${pad(d.getSeconds())}`;
  }
  return `${d.toLocaleString('en', { month: 'short' })} ${d.getDate()} ${time}`;
}

/** A span of time in the largest units that matter: "42 s", "3 min", "2 h 5 min", "3 d 4 h". */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) {
    return `${s} s`;
  }
  const m = Math.floor(s / 60);
  if (m < 60) {
    return `${m} min`;
  }
  const h = Math.floor(m / 60);
  if (h < 48) {
    return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  }
  return `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** The job's times in one line; only absolute moments, so the line stays the same between polls. */
export function times(job: IJob): string {
  const parts = job.submitted ? [`submitted ${clock(job.submitted)}`] : [];
  if (job.started !== null) {
    parts.push(`started ${clock(job.started)}`);
  }
  if (job.finished !== null) {
    parts.push(
      job.started !== null
        ? `ran ${duration(job.finished - job.started)}`
        : `ended ${clock(job.finished)}`
    );
  }
  return parts.join(' · ');
}

const memory = (mb: number) =>
  mb >= 1024 ? `${+(mb / 1024).toFixed(1)} GB` : `${mb} MB`;
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** What a profile gives a job: "2 CPUs, 4 GB memory, 1 GPU, at most 8 h". */
export function resources(profile: IProfile): string {
  const parts = [
    plural(profile.cpus, 'CPU'),
    `${memory(profile.memory_mb)} memory`
  ];
  if (profile.gpus > 0) {
    let gpus = plural(profile.gpus, 'GPU');
    const needs: string[] = [];
    if (profile.gpus_minimum_memory_mb) {
      needs.push(`${memory(profile.gpus_minimum_memory_mb)}+`);
    }
    if (profile.gpus_minimum_capability) {
      needs.push(`compute capability ${profile.gpus_minimum_capability}+`);
    }
    if (needs.length) {
      gpus += ` (${needs.join(', ')})`;
    }
    parts.push(gpus);
  }
  if (profile.runtime_seconds) {
    parts.push(`at most ${duration(profile.runtime_seconds)}`);
  }
  return parts.join(', ');
}

/** The profile's display name for a job's slug (the slug itself when the profile is no longer offered). */
export function profileName(slug: string | null, profiles: IProfile[]): string {
  if (!slug) {
    return 'no profile';
  }
  return profiles.find(p => p.slug === slug)?.display_name ?? slug;
}

/** Counts of the states, most advanced first: [["done", 2], ["running", 1], ["queued", 1]]. */
export function stateCounts(states: string[]): [string, number][] {
  const order = [
    'failed',
    'done',
    'running',
    'held',
    'suspended',
    'queued',
    'removed'
  ];
  const counts = new Map<string, number>();
  for (const s of states) {
    counts.set(s, (counts.get(s) ?? 0) + 1);
  }
  return [...counts.entries()].sort(
    (a, b) => order.indexOf(a[0]) - order.indexOf(b[0])
  );
}

/** A job as a title: its name, a scan point's parameters, its id: "train lr=0.1 layers=2 (12.3)". */
export function jobTitle(job: IJob): string {
  const params = Object.entries(job.scan?.params ?? {}).map(
    ([k, v]) => ` ${k}=${v}`
  );
  return `${job.name}${params.join('')} (${job.id})`;
}

/** The last part of a path: what a file is called in the panel (the whole path goes into its tooltip). */
export const baseName = (path: string) => path.slice(path.lastIndexOf('/') + 1);
