/**
 * One job in the Jobs panel: state, name, profile and times, what happened in words, and the actions its
 * state allows.
 */
import { IJob, IProfile, JobAction } from './api';
import { button, el } from './dom';
import { isActive, profileName, stateDetail, stateWord, times } from './format';

/** What the entries ask the panel to do. */
export interface IEntryActions {
  act(job: IJob, action: JobAction): void;
  openOutput(job: IJob): void;
  openFolder(folder: string | null): void; // null: the job's folder is outside the Lab's root
  openScan(cluster: number, points: IJob[]): void;
  cancelScan(cluster: number, active: IJob[]): void; // the points not yet finished
}

export function stateBadge(word: string): HTMLSpanElement {
  const badge = el(
    'span',
    `jp-condorhub-job-state jp-condorhub-state-${word}`,
    word
  );
  return badge;
}

export function renderJob(
  job: IJob,
  profiles: IProfile[],
  actions: IEntryActions
): HTMLElement {
  const word = stateWord(job);
  const node = el('div', `jp-condorhub-job jp-condorhub-state-${word}`);
  node.dataset.id = job.id;
  node.dataset.state = job.state;

  const head = el('div', 'jp-condorhub-job-head');
  const name = el('span', 'jp-condorhub-job-name', job.name);
  name.title = `${job.file ?? job.name}: show its output`;
  name.addEventListener('click', () => actions.openOutput(job));
  head.append(
    stateBadge(word),
    name,
    el('span', 'jp-condorhub-job-id', job.id)
  );

  const info = el(
    'div',
    'jp-condorhub-job-info',
    `${profileName(job.profile, profiles)} · ${times(job)}`
  );
  node.append(head, info);
  const detail = stateDetail(job);
  if (detail) {
    node.appendChild(
      el('div', `jp-condorhub-job-detail jp-condorhub-detail-${word}`, detail)
    );
  }

  const bar = el('div', 'jp-condorhub-job-actions');
  bar.appendChild(
    button(
      'Output',
      'jp-condorhub-job-output',
      () => actions.openOutput(job),
      'Show stdout and stderr'
    )
  );
  if (isActive(job)) {
    bar.appendChild(
      button(
        'Cancel',
        'jp-condorhub-job-remove',
        () => actions.act(job, 'remove'),
        'Remove the job from the queue'
      )
    );
  }
  if (job.state === 'held') {
    bar.appendChild(
      button(
        'Release',
        'jp-condorhub-job-release',
        () => actions.act(job, 'release'),
        'Let it run again'
      )
    );
  } else if (job.state === 'queued' || job.state === 'running') {
    bar.appendChild(
      button(
        'Hold',
        'jp-condorhub-job-hold',
        () => actions.act(job, 'hold'),
        'Stop it and keep it in the queue'
      )
    );
  }
  if (!isActive(job) && job.file) {
    // Only jobs from the Lab: the server resubmits the request they were made from.
    bar.appendChild(
      button(
        'Resubmit',
        'jp-condorhub-job-resubmit',
        () => actions.act(job, 'resubmit'),
        'Submit it again as a new job'
      )
    );
  }
  bar.appendChild(
    button(
      'Open folder',
      'jp-condorhub-job-folder',
      () => actions.openFolder(job.folder),
      `Show ${job.folder ?? 'its folder'} in the file browser`
    )
  );
  node.appendChild(bar);
  return node;
}
