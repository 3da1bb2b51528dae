/**
 * The Jobs panel (left sidebar): the user's jobs and scans, newest first, polled from GET jobs.
 *
 * Polls every few seconds while it is visible and the browser tab is in front, rarely otherwise (open
 * output tabs still want the job's state), and slower after failures. When the schedd cannot be reached
 * it says so and keeps the list it had: an outage of the queue is no reason to forget the user's jobs.
 * Entries are redrawn only when their job changed, so a click never lands on a node that is replaced.
 */
import { Widget } from '@lumino/widgets';

import { IJob, IJobList, IProfile, listJobs } from './api';
import { button, el } from './dom';
import { clock } from './format';
import { IEntryActions, renderJob } from './entry';
import { renderScan } from './scanentry';

const VISIBLE_MS = 3000;
const HIDDEN_MS = 30000;
const MAX_BACKOFF_MS = 60000;
const NOTE_MS = 10000;

/** The panel's list in display order: a scan is one entry at the place of its newest point. */
type Entry =
  { key: string; job: IJob } | { key: string; cluster: number; points: IJob[] };

function entries(jobs: IJob[]): Entry[] {
  const out: Entry[] = [];
  const scans = new Map<number, IJob[]>();
  for (const job of jobs) {
    if (!job.scan) {
      out.push({ key: `job-${job.id}`, job });
      continue;
    }
    let points = scans.get(job.scan.cluster);
    if (!points) {
      points = [];
      scans.set(job.scan.cluster, points);
      out.push({
        key: `scan-${job.scan.cluster}`,
        cluster: job.scan.cluster,
        points
      });
    }
    points.push(job);
  }
  return out;
}

export class JobsPanel extends Widget {
  private statusBox = el('div', 'jp-condorhub-jobs-status');
  private listBox = el('div', 'jp-condorhub-jobs-list');
  private drawn = new Map<string, { signature: string; node: HTMLElement }>();
  private timer = 0;
  private failures = 0;
  private inFlight: Promise<void> | null = null;
  private listeners = new Set<(jobs: IJob[]) => void>();
  private _jobs: IJob[] = [];
  private _profiles: IProfile[] = [];
  private loadedAt: number | null = null;
  private note: { text: string; error: boolean; until: number } | null = null;

  constructor(private actions: IEntryActions) {
    super();
    this.id = 'condorhub-jobs';
    this.addClass('jp-condorhub-jobs-panel');
    this.title.caption = 'HTCondor jobs';
    const header = el('div', 'jp-condorhub-jobs-header');
    header.append(
      el('span', 'jp-condorhub-jobs-title', 'HTCondor jobs'),
      button(
        'Refresh',
        'jp-condorhub-jobs-refresh',
        () => void this.refresh(),
        'Ask the queue now'
      )
    );
    this.node.append(header, this.statusBox, this.listBox);
    document.addEventListener('visibilitychange', () => this.schedule(0));
  }

  get jobs(): IJob[] {
    return this._jobs;
  }

  get profiles(): IProfile[] {
    return this._profiles;
  }

  job(id: string): IJob | undefined {
    return this._jobs.find(j => j.id === id);
  }

  /** Called with the new list after every successful poll (output tabs follow their job's state). */
  onChange(listener: (jobs: IJob[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A line above the list for a few seconds (what an action did, or why it was refused). */
  tell(text: string, error = false): void {
    this.note = { text, error, until: Date.now() + NOTE_MS };
    this.showStatus('');
  }

  protected onAfterShow(): void {
    this.schedule(0);
  }

  protected onAfterHide(): void {
    this.schedule(HIDDEN_MS);
  }

  protected onAfterAttach(): void {
    this.schedule(0);
  }

  private interval(): number {
    const base = this.isVisible && !document.hidden ? VISIBLE_MS : HIDDEN_MS;
    return Math.min(MAX_BACKOFF_MS, base * 2 ** Math.min(this.failures, 5));
  }

  private schedule(ms: number): void {
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => void this.refresh(), ms);
  }

  /** Ask GET jobs now (one request at a time; a second call waits for the running one). */
  refresh(): Promise<void> {
    if (!this.inFlight) {
      this.inFlight = this.poll().finally(() => {
        this.inFlight = null;
        if (!this.isDisposed) {
          this.schedule(this.interval());
        }
      });
    }
    return this.inFlight;
  }

  private async poll(): Promise<void> {
    let answer: IJobList;
    try {
      answer = await listJobs();
    } catch (error) {
      this.failures += 1;
      this.showStatus(`${(error as Error).message}${this.kept()}`, true);
      return;
    }
    this._profiles = answer.profiles;
    if (answer.schedd !== 'ok') {
      this.failures += 1;
      this.showStatus(
        `${answer.message || 'The HTCondor queue cannot be reached.'}${this.kept()}`,
        true
      );
      return;
    }
    this.failures = 0;
    this._jobs = answer.jobs;
    this.loadedAt = Date.now() / 1000;
    this.showStatus(
      answer.jobs.length
        ? ''
        : 'No jobs yet. Right-click a .py, .sh or .ipynb file → “Submit as HTCondor job…”.'
    );
    this.render();
    for (const listener of this.listeners) {
      listener(this._jobs);
    }
  }

  private kept(): string {
    return this.loadedAt === null
      ? ''
      : ` The list below is from ${clock(this.loadedAt)}.`;
  }

  private showStatus(text: string, error = false): void {
    const note = this.note && this.note.until > Date.now() ? this.note : null;
    this.statusBox.textContent = [note?.text, text].filter(Boolean).join('\n');
    this.statusBox.classList.toggle(
      'jp-condorhub-error',
      error || !!note?.error
    );
    this.node.classList.toggle(
      'jp-condorhub-jobs-stale',
      error && this.loadedAt !== null
    );
  }

  private render(): void {
    const wanted: HTMLElement[] = [];
    const seen = new Set<string>();
    for (const entry of entries(this._jobs)) {
      const signature =
        JSON.stringify('job' in entry ? entry.job : entry.points) +
        JSON.stringify(this._profiles);
      let drawn = this.drawn.get(entry.key);
      if (!drawn || drawn.signature !== signature) {
        const node =
          'job' in entry
            ? renderJob(entry.job, this._profiles, this.actions)
            : renderScan(
                entry.cluster,
                entry.points,
                this._profiles,
                this.actions
              );
        drawn?.node.replaceWith(node);
        drawn = { signature, node };
        this.drawn.set(entry.key, drawn);
      }
      seen.add(entry.key);
      wanted.push(drawn.node);
    }
    for (const [key, drawn] of this.drawn) {
      if (!seen.has(key)) {
        drawn.node.remove();
        this.drawn.delete(key);
      }
    }
    const current = Array.from(this.listBox.children);
    if (
      current.length !== wanted.length ||
      current.some((node, i) => node !== wanted[i])
    ) {
      this.listBox.replaceChildren(...wanted);
    }
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    super.dispose();
  }
}
