/**
 * A job's stdout and stderr in a main-area tab, appended as the job writes them.
 *
 * Each stream is read from the offset the last answer gave (GET jobs/<id>/output), every second while the
 * job runs and until the server says the stream is done. The job's state in the header comes from the
 * Jobs panel's polls, so an open tab costs only its output requests.
 */
import { MainAreaWidget, ToolbarButton } from '@jupyterlab/apputils';
import { folderIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { IJob, Stream, jobOutput } from './api';
import { el } from './dom';
import { jobTitle, stateDetail, stateWord, times } from './format';
import { jobsIcon } from './icon';

const POLL_MS = 1000;
const ERROR_POLL_MS = 5000;
/** Characters kept per stream; beyond it the oldest part is dropped (the file itself has all of it). */
const MAX_CHARS = 2_000_000;

class StreamView {
  readonly node = el('div', 'jp-condorhub-output-stream');
  private pre = el('pre', 'jp-condorhub-output-text');
  private label = el('div', 'jp-condorhub-output-label');
  offset = 0;
  done = false;
  private cut = false;

  constructor(
    readonly stream: Stream,
    private file: string | null
  ) {
    this.node.dataset.stream = stream;
    // An empty stream takes little room, so the other one gets the tab (most jobs write only one).
    this.node.classList.add('jp-condorhub-output-empty');
    this.setLabel('');
    this.node.append(this.label, this.pre);
  }

  setLabel(extra: string): void {
    const file = this.file ? ` — ${this.file}` : '';
    this.label.textContent = `${this.stream}${file}${extra ? ` (${extra})` : ''}`;
  }

  get text(): string {
    return this.pre.textContent ?? '';
  }

  append(data: string): void {
    if (!data) {
      return;
    }
    // Follow the end only when the reader is already there: scrolling up to read stops the jumps.
    const atEnd =
      this.pre.scrollHeight - this.pre.scrollTop - this.pre.clientHeight < 24;
    let text = this.text + data;
    if (text.length > MAX_CHARS) {
      text = text.slice(text.length - MAX_CHARS);
      this.cut = true;
    }
    this.pre.textContent = text;
    this.node.classList.remove('jp-condorhub-output-empty');
    this.node.classList.toggle('jp-condorhub-output-cut', this.cut);
    if (atEnd) {
      this.pre.scrollTop = this.pre.scrollHeight;
    }
  }
}

export class JobOutput extends Widget {
  private header = el('div', 'jp-condorhub-output-header');
  private message = el('div', 'jp-condorhub-output-message');
  private streams: StreamView[];
  private timer = 0;

  constructor(public job: IJob) {
    super();
    this.addClass('jp-condorhub-output');
    this.streams = [
      new StreamView('stdout', job.stdout),
      new StreamView('stderr', job.stderr)
    ];
    this.node.append(
      this.header,
      this.message,
      ...this.streams.map(s => s.node)
    );
    this.mark('id', job.id);
    this.setJob(job);
  }

  private mark(key: string, value: string): void {
    this.node.dataset[key] = value;
  }

  /** The job as the panel last saw it. */
  setJob(job: IJob): void {
    this.job = job;
    const word = stateWord(job);
    this.mark('state', word);
    this.header.replaceChildren(
      el('span', `jp-condorhub-job-state jp-condorhub-state-${word}`, word),
      el('span', 'jp-condorhub-output-title', jobTitle(job)),
      el('span', 'jp-condorhub-output-times', times(job))
    );
    this.header.appendChild(
      el('div', 'jp-condorhub-output-detail', stateDetail(job) ?? '')
    );
  }

  /** Start reading (again); stops by itself once both streams are done. */
  start(): void {
    this.schedule(0);
  }

  private schedule(ms: number): void {
    window.clearTimeout(this.timer);
    if (!this.isDisposed && this.streams.some(s => !s.done)) {
      this.timer = window.setTimeout(() => void this.poll(), ms);
    }
  }

  private async poll(): Promise<void> {
    try {
      for (const view of this.streams) {
        if (view.done) {
          continue;
        }
        // Read until the server has nothing more (256 KiB per answer) before waiting again.
        for (;;) {
          const answer = await jobOutput(this.job.id, view.stream, view.offset);
          const grew = answer.offset > view.offset;
          view.append(answer.data);
          view.offset = answer.offset;
          view.done = answer.done;
          if (view.done || !grew || !answer.data) {
            break;
          }
        }
        view.setLabel(
          view.done
            ? view.text
              ? 'complete'
              : 'empty'
            : 'live, follows the job'
        );
      }
      this.message.textContent = '';
      this.message.classList.remove('jp-condorhub-error');
      this.schedule(POLL_MS);
    } catch (error) {
      this.message.textContent = `${(error as Error).message} (trying again)`;
      this.message.classList.add('jp-condorhub-error');
      this.schedule(ERROR_POLL_MS);
    }
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    super.dispose();
  }
}

/** The output in a closable main-area tab, with "open folder" in its toolbar. */
export function outputTab(
  job: IJob,
  openFolder: (folder: string | null) => void
): MainAreaWidget<JobOutput> {
  const content = new JobOutput(job);
  const tab = new MainAreaWidget({ content });
  tab.id = `condorhub-job-output-${job.id.replace(/\W/g, '-')}`;
  tab.title.label = `Output: ${jobTitle(job)}`;
  tab.title.icon = jobsIcon;
  tab.title.closable = true;
  tab.toolbar.addItem(
    'folder',
    new ToolbarButton({
      icon: folderIcon,
      label: 'Open folder',
      tooltip: `Show ${job.folder ?? 'its folder'} in the file browser`,
      onClick: () => openFolder(content.job.folder)
    })
  );
  content.start();
  return tab;
}
