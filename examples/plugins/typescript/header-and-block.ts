// A TypeScript plugin for Trellis (docs/plugins.md): marks every request and
// response it sees with `x-plugin: <name>`, and answers 403 itself to
// callers whose `x-user` header is in the configured block list, counting
// them in trellis_plugin_blocked_total{plugin="<name>"}.
//
// Configuration (the filter's PluginConfig.configuration, a JSON string):
//   {"blockedUsers": ["mallory"]}
import type { PluginFactory } from '../../../src/proxy/plugins/api.ts';

definePlugin(((host) => {
  const { blockedUsers = [] } = JSON.parse(host.config || '{}') as { blockedUsers?: string[] };
  const blocked = host.metrics.counter('blocked_total', 'Requests this plugin refused.');
  return {
    onRequestHeaders(req) {
      const user = req.headers.get('x-user');
      if (user !== undefined && blockedUsers.includes(user)) {
        blocked.inc();
        host.log.info(`blocked ${user} on ${req.path}`);
        return req.respond(403, `blocked by ${host.name}\n`);
      }
      req.headers.set('x-plugin', host.name);
    },
    onResponseHeaders(res) {
      res.headers.set('x-plugin', host.name);
    },
  };
}) satisfies PluginFactory);
