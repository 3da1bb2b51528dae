"""REST API of the TensorBoard manager (under {base_url}condorhub/api/tensorboard):

GET    ''                  the running instances
POST   '' {logdir}         start one for a folder (201; 200 with the existing one for the same folder)
GET    /<id>               one instance (state: starting, running, failed)
POST   /<id>/reload        restart its process; the tab's URL stays
DELETE /<id>               stop it (its process and the process group are gone when this answers)
"""

from __future__ import annotations

from jupyter_server.auth.decorator import authorized
from tornado import web

from ..handlers_base import CondorhubAPIHandler
from .manager import TensorBoardError
from .proxy import InstanceProxyHandler, PortProxyHandler


class TensorBoardAPIHandler(CondorhubAPIHandler):
    # Starting TensorBoard starts a process as the user: the permission of starting kernels.
    auth_resource = "kernels"

    @property
    def manager(self):
        return self.extensionapp.tensorboards

    async def call(self, coro):
        try:
            return await coro
        except TensorBoardError as err:
            raise web.HTTPError(err.status, str(err)) from None


class InstancesHandler(TensorBoardAPIHandler):
    @web.authenticated
    @authorized
    async def get(self):
        self.finish({"instances": self.manager.list()})

    @web.authenticated
    @authorized
    async def post(self):
        body = self.json_body()
        if not isinstance(body.get("logdir"), str):
            raise web.HTTPError(
                400, 'give the log folder: {"logdir": "runs"} (relative to the Lab\'s root, "" for the root)'
            )
        real, rel = self.resolve(body["logdir"], folder=True)
        inst, created = await self.call(self.manager.start(rel, real))
        self.set_status(201 if created else 200)
        self.finish(inst.model())


class InstanceHandler(TensorBoardAPIHandler):
    @web.authenticated
    @authorized
    async def get(self, instance_id):
        inst = await self.call(self._get(instance_id))
        self.finish(inst.model())

    async def _get(self, instance_id):
        return self.manager.get(instance_id)

    @web.authenticated
    @authorized
    async def delete(self, instance_id):
        await self.call(self.manager.stop(instance_id))
        self.set_status(204)
        self.finish()


class ReloadHandler(TensorBoardAPIHandler):
    @web.authenticated
    @authorized
    async def post(self, instance_id):
        inst = await self.call(self.manager.reload(instance_id))
        self.finish(inst.model())


def handlers():
    return [
        (r"condorhub/api/tensorboard/?", InstancesHandler),
        (r"condorhub/api/tensorboard/(?P<instance_id>[0-9a-f]+)/?", InstanceHandler),
        (r"condorhub/api/tensorboard/(?P<instance_id>[0-9a-f]+)/reload", ReloadHandler),
        (r"condorhub/tensorboard/(?P<instance_id>[0-9a-f]+)(?P<rest>/.*)?", InstanceProxyHandler),
        (r"condorhub/tensorboard-port/(?P<port>\d{1,5})(?P<rest>/.*)?", PortProxyHandler),
    ]
