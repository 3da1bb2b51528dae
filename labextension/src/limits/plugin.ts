/**
 * Warnings before the runtime limit: HTCondor ends a batch server at its profile's runtime limit, counted
 * from the start of its job. The server knows when (GET {base_url}condorhub/api/limits, from what the hub
 * put in its environment); this plugin shows a JupyterLab notification 15 min before (ProfileSpawner.limit_warning)
 * and again 5 min before (ProfileSpawner.limit_last_warning), with a Save all button. A login-node server
 * has no limit and shows nothing.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Notification } from '@jupyterlab/apputils';

import { requestAPI } from '../api';
import { ILimits, warningText, warningTimes } from './schedule';

async function fetchLimits(): Promise<ILimits | null> {
  try {
    return await requestAPI<ILimits>('limits');
  } catch {
    return null; // a server without condorhub's limits extension: nothing to warn about
  }
}

function warn(app: JupyterFrontEnd, deadline: number, offset: number): void {
  const left = deadline - (Date.now() / 1000 + offset);
  const actions = app.commands.hasCommand('docmanager:save-all')
    ? [
        {
          label: 'Save all',
          caption: 'Save every open document now',
          callback: () => void app.commands.execute('docmanager:save-all')
        }
      ]
    : [];
  Notification.warning(warningText(left), { autoClose: false, actions });
}

export const limitsPlugin: JupyterFrontEndPlugin<void> = {
  id: '@condorhub/lab:limits',
  description:
    "Warns before the server's runtime limit (HTCondor ends the server then): save your work",
  autoStart: true,
  activate: (app: JupyterFrontEnd) => {
    void app.restored.then(async () => {
      const limits = await fetchLimits();
      if (!limits || !limits.deadline) {
        return;
      }
      const deadline = limits.deadline;
      // The server's clock minus the browser's: the deadline is in the server's time.
      const offset = limits.now - Date.now() / 1000;
      for (const time of warningTimes(limits)) {
        window.setTimeout(
          () => warn(app, deadline, offset),
          time.inSeconds * 1000
        );
      }
    });
  }
};
