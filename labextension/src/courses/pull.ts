/**
 * Course pulls as JupyterLab notifications.
 *
 * The server pulls the student's courses in the background after it starts (condorhub.lab.courses.sync), so
 * a slow course repository never delays the start; this plugin shows what those pulls are doing: one
 * notification per course while it is being brought up to date, turned into a success (closing by
 * itself) or an error that stays. It polls {base_url}condorhub/api/courses until no pull is running.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

interface ICourseState {
  slug: string;
  folder: string;
  state: 'waiting' | 'pulling' | 'done' | 'failed' | 'unpublished';
  message: string;
}

const POLL_MS = 2000;
// JupyterLab cuts notification texts at 140 characters; the server log has the whole message.
const MAX_MESSAGE = 120;
const isActive = (course: ICourseState) =>
  course.state === 'waiting' || course.state === 'pulling';

async function courseStates(
  settings: ServerConnection.ISettings
): Promise<ICourseState[] | null> {
  const url = URLExt.join(settings.baseUrl, 'condorhub/api/courses');
  try {
    const response = await ServerConnection.makeRequest(url, {}, settings);
    return response.ok
      ? ((await response.json()).courses as ICourseState[])
      : null;
  } catch {
    return null; // the server went away; nothing to show
  }
}

function short(text: string): string {
  const line = text.trim().split('\n').pop() ?? '';
  return line.length > MAX_MESSAGE
    ? `${line.slice(0, MAX_MESSAGE - 1)}…`
    : line;
}

/** Poll until no course is waiting or pulling; keep one notification per course in step with its state. */
export async function watchCourses(
  settings = ServerConnection.makeSettings()
): Promise<void> {
  const notes = new Map<string, string>(); // course slug -> notification id
  const finished = new Set<string>();
  for (;;) {
    const courses = await courseStates(settings);
    if (courses === null) {
      return; // a server without condorhub's course extension, or not answering
    }
    for (const course of courses) {
      const id = notes.get(course.slug);
      if (isActive(course)) {
        if (!id) {
          notes.set(
            course.slug,
            Notification.emit(
              `Course ${course.slug}: bringing ~/${course.folder} up to date…`,
              'in-progress',
              {
                autoClose: false
              }
            )
          );
        }
        continue;
      }
      if (finished.has(course.slug) || course.state === 'unpublished') {
        continue;
      }
      finished.add(course.slug);
      if (course.state === 'done' && id) {
        Notification.update({
          id,
          message: `Course ${course.slug}: up to date in ~/${course.folder}`,
          type: 'success',
          autoClose: 5000
        });
      } else if (course.state === 'failed') {
        const message = `Course ${course.slug} could not be updated: ${short(course.message)}`;
        if (id) {
          Notification.update({ id, message, type: 'error', autoClose: false });
        } else {
          Notification.error(message, { autoClose: false });
        }
      }
    }
    if (!courses.some(isActive)) {
      return;
    }
    await new Promise(resolve => setTimeout(resolve, POLL_MS));
  }
}

export const coursesPlugin: JupyterFrontEndPlugin<void> = {
  id: '@condorhub/lab:courses',
  description:
    'Shows the progress of the course pulls a server runs after it starts',
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    void app.restored.then(() =>
      watchCourses(app.serviceManager.serverSettings)
    );
  }
};
