// Tollgate's JavaScript client (CONTRACT section 5): ask the gate before acting, fail closed.
//
//   import { Gate, DeniedError } from 'tollgate-client';
//   const gate = new Gate();                 // $TOLLGATE_URL, else http://127.0.0.1:9800
//   const decision = await gate.check({ action: 'file.read', path: '/app/data/x.csv' });
//   await gate.require({ action: 'process.exec', argv: ['git', 'push'] }); // throws DeniedError
//
// Zero dependencies, Node >= 18. See docs/clients.md.

export { DEFAULT_URL, Gate, waitForApproval } from './gate.js';
export { DeniedError } from './errors.js';
export { inClusterConfig } from './kube.js';
