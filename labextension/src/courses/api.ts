/**
 * The server's publish API (condorhub.lab.courses.publish), which forwards to the hub as the server's owner.
 */
import { postJSON, requestAPI } from '../api';

export interface ITeachingCourse {
  slug: string;
  title: string;
  branch: string;
}

export interface ILimits {
  max_size: number;
  max_files: number;
  timeout: number;
}

export interface ITeaching {
  courses: ITeachingCourse[];
  limits: ILimits | null;
}

/** What publishing a folder would send, computed in the user's own server with the hub's reader's rules. */
export interface IPreview extends ITeaching {
  path: string;
  folder: string; // relative to the home, as the hub reads it
  files: number;
  bytes: number;
  biggest: { path: string; size: number }[];
  skipped: string[];
  skipped_count: number;
  excluded: string[];
  problem: string | null;
}

export interface IPublished {
  course: string;
  commit: string;
  changed: boolean;
  files: number;
  skipped?: string[];
}

export function getTeaching(): Promise<ITeaching> {
  return requestAPI<ITeaching>('courses/teaching');
}

export function previewPublish(path: string): Promise<IPreview> {
  return requestAPI<IPreview>('courses/publish', {}, { path });
}

export function publishFolder(
  course: string,
  path: string
): Promise<IPublished> {
  return postJSON<IPublished>('courses/publish', { course, path });
}

/** 1.5 MiB, 340 KiB, 12 B (powers of 1024, as the hub's limits are written). */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0
    ? `${bytes} B`
    : `${value >= 10 ? value.toFixed(0) : value.toFixed(1)} ${units[unit]}`;
}
