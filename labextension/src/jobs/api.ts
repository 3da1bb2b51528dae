/**
 * The Jobs and Scans REST API of the user's own server (condorhub.lab.jobs, /work/briefs/s19_jobs_api.md):
 * its types and one function per call, all through the one request helper in ../api.
 */
import { postJSON, requestAPI } from '../api';

export type JobState =
  'queued' | 'running' | 'held' | 'suspended' | 'done' | 'removed' | 'failed';

export interface IJob {
  id: string; // "cluster.proc"
  cluster: number;
  proc: number;
  name: string;
  state: JobState;
  hold_reason: string | null;
  exit_code: number | null;
  submitted: number | null; // epoch seconds
  started: number | null;
  finished: number | null;
  folder: string | null; // the job's folder relative to the server root; null: outside it
  stdout: string | null;
  stderr: string | null;
  scan: { cluster: number; params: Record<string, string> } | null;
  profile: string | null;
  file: string | null; // null: not submitted from the Lab
}

/** A condor profile the user may submit with (CONDORHUB_JOB_PROFILES, the spawn form's profiles). */
export interface IProfile {
  slug: string;
  display_name: string;
  description: string;
  cpus: number;
  memory_mb: number;
  gpus: number;
  runtime_seconds: number | null; // null: no limit of its own
  gpus_minimum_capability: number | null;
  gpus_minimum_memory_mb: number | null;
}

export interface IJobList {
  schedd: 'ok' | 'unreachable';
  message: string | null;
  jobs: IJob[];
  profiles: IProfile[];
}

export interface ISubmit {
  path: string;
  profile: string;
  arguments: string;
  parameters: Record<string, string>;
  folder?: string; // left out: the server's default, jobs/<stem>-<timestamp>
  environment: 'server';
}

/** A scan: one value list per parameter, sent as the user wrote it ("0.001, 0.01" or "1:4"); the server parses. */
export interface IScanSubmit extends ISubmit {
  grid: Record<string, string>;
}

export interface IScanSubmitted {
  cluster: number | null; // null for a preview
  count: number;
  folder: string;
  pattern: string;
  description: string;
}

export interface IScan {
  cluster: number;
  folder: string;
  pattern: string;
  params: string[];
  points: {
    params: Record<string, string>;
    state: JobState;
    id: string;
    exit_code: number | null;
  }[];
}

export interface IOutput {
  data: string;
  offset: number;
  done: boolean;
}

export type Stream = 'stdout' | 'stderr';
export type JobAction = 'remove' | 'hold' | 'release' | 'resubmit';

const jobPath = (id: string, rest: string) =>
  `jobs/${encodeURIComponent(id)}/${rest}`;

export const listJobs = () => requestAPI<IJobList>('jobs');
export const jobOutput = (id: string, stream: Stream, offset: number) =>
  requestAPI<IOutput>(
    jobPath(id, 'output'),
    {},
    { stream, offset: String(offset) }
  );
export const actOnJob = (id: string, action: JobAction) =>
  postJSON<{ job: IJob }>(jobPath(id, action), {});
export const previewJob = (submit: ISubmit) =>
  postJSON<{ description: string; folder: string }>('jobs/preview', submit);
export const submitJob = (submit: ISubmit) =>
  postJSON<{ job: IJob; description: string }>('jobs', submit);
export const previewScan = (scan: IScanSubmit) =>
  postJSON<IScanSubmitted>('scans/preview', scan);
export const submitScan = (scan: IScanSubmit) =>
  postJSON<IScanSubmitted>('scans', scan);
export const getScan = (cluster: number) =>
  requestAPI<IScan>(`scans/${cluster}`);
