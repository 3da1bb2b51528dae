/** The TensorBoard manager's REST API. */
import { postJSON, requestAPI } from '../api';

export interface ITensorBoard {
  id: string;
  logdir: string;
  url: string; // relative to the server's base URL, ends in '/'
  state: 'starting' | 'running' | 'failed' | 'stopped';
  message: string | null;
  pid: number | null;
  started: number;
  ready_after: number | null;
}

export const listTensorBoards = async () =>
  (await requestAPI<{ instances: ITensorBoard[] }>('tensorboard')).instances;
export const startTensorBoard = (logdir: string) =>
  postJSON<ITensorBoard>('tensorboard', { logdir });
export const getTensorBoard = (id: string) =>
  requestAPI<ITensorBoard>(`tensorboard/${id}`);
export const reloadTensorBoard = (id: string) =>
  postJSON<ITensorBoard>(`tensorboard/${id}/reload`, {});
export const stopTensorBoard = (id: string) =>
  requestAPI<null>(`tensorboard/${id}`, { method: 'DELETE' });
