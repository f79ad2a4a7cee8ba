'use strict';
// Preloaded (NODE_OPTIONS=--require) into Agents Playground, whose CLI has no host option:
// `server.listen(port)` binds 127.0.0.1 instead of every interface. Used by the tests and `make playground`.
const net = require('net');
const host = '127.0.0.1';
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function listenOnLoopback(...args) {
  const first = args[0];
  if (typeof first === 'number' || (typeof first === 'string' && /^[0-9]+$/.test(first))) {
    if (typeof args[1] !== 'string') args.splice(1, 0, host);
  } else if (first && typeof first === 'object' && 'port' in first && first.host === undefined) {
    args[0] = Object.assign({}, first, { host });
  }
  return listen.apply(this, args);
};
