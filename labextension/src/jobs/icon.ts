import { LabIcon } from '@jupyterlab/ui-components';

/** The Jobs panel's icon: a queue of three jobs, the first one running. */
export const jobsIcon = new LabIcon({
  name: 'condorhub:jobs',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<rect x="3" y="4" width="18" height="4" rx="1"/><rect x="3" y="10" width="18" height="4" rx="1" opacity=".7"/>' +
    '<rect x="3" y="16" width="18" height="4" rx="1" opacity=".45"/><path d="M5 5l3 1-3 1z" fill="#fff"/></g></svg>'
});
