// The guarded helpers against the real daemon: real files, real programs, a real web
// server and a loopback stand-in for the Kubernetes API. A denied action never happens.

import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import { after, before, describe, test } from 'node:test';

import { DeniedError, Gate, inClusterConfig } from '../src/index.js';
import { environment, webServer } from './helpers.js';

const { url, files } = environment();
const gate = new Gate({ url });
const servers = [];
let scratch;

before(async () => {
  for (const name of ['data', 'out', 'secret']) await mkdir(`${files}/${name}`, { recursive: true });
  await writeFile(`${files}/data/report.csv`, 'a,b\n1,2\n');
  await writeFile(`${files}/secret/key`, 'do not read');
  await rm(`${files}/data/escape`, { force: true });
  await symlink(`${files}/secret/key`, `${files}/data/escape`);
  scratch = await mkdtemp(`${os.tmpdir()}/tollgate-js-`);
});

after(async () => {
  gate.close();
  for (const server of servers) server.close();
  await rm(scratch, { recursive: true, force: true });
});

async function web(redirectTo) {
  const server = await webServer(redirectTo);
  servers.push(server);
  return server;
}

describe('openFile', () => {
  test('reads an allowed file, by absolute path or relative to cwd', async () => {
    const absolute = await gate.openFile(`${files}/data/report.csv`);
    assert.equal(await absolute.readFile('utf8'), 'a,b\n1,2\n');
    await absolute.close();
    const relative = await gate.openFile('data/report.csv', 'r', { cwd: files });
    assert.equal(await relative.readFile('utf8'), 'a,b\n1,2\n');
    await relative.close();
  });

  test('sends realPath: a symlink out of the allowed tree is denied', async () => {
    await assert.rejects(gate.openFile('data/escape', 'r', { cwd: files }), (error) => {
      assert.ok(error instanceof DeniedError);
      assert.equal(error.reason, `realPath: no rule allows file.read of ${files}/secret/key`);
      return true;
    });
  });

  test('writing needs file.write, reading and writing needs both', async () => {
    const handle = await gate.openFile(`${files}/out/result.txt`, 'w');
    await handle.writeFile('done');
    await handle.close();
    assert.equal(await readFile(`${files}/out/result.txt`, 'utf8'), 'done');
    await assert.rejects(gate.openFile(`${files}/data/report.csv`, 'w'), DeniedError);
    await assert.rejects(gate.openFile(`${files}/out/result.txt`, 'r+'), DeniedError);
    assert.equal(await readFile(`${files}/data/report.csv`, 'utf8'), 'a,b\n1,2\n');
  });

  test('a symlink swapped in after the check is neither opened nor truncated', async () => {
    const victim = `${files}/secret/victim`;
    await writeFile(victim, 'precious');
    const swapped = `${files}/out/swap`;
    await rm(swapped, { recursive: true, force: true });
    await rm(`${files}/secret/log`, { force: true });
    await mkdir(swapped);
    await writeFile(`${swapped}/log`, 'old');

    class SwappingGate extends Gate {
      async require(request) {
        const decision = await super.require(request);
        await rename(swapped, `${scratch}/moved`);
        await symlink(`${files}/secret`, swapped);
        await symlink(victim, `${files}/secret/log`);
        return decision;
      }
    }
    const swapping = new SwappingGate({ url });
    try {
      await assert.rejects(swapping.openFile(`${swapped}/log`, 'w'), (error) => {
        assert.equal(error.decision.error, 'changed');
        assert.match(error.reason, /changed between the check and the open/);
        return true;
      });
    } finally {
      swapping.close();
    }
    assert.equal(await readFile(victim, 'utf8'), 'precious');
  });
});

describe('run', () => {
  test('runs an allowed argv or command line and refuses a denied one', async () => {
    assert.deepEqual(await gate.run(['echo', 'hello']), {
      exitCode: 0,
      signal: null,
      stdout: 'hello\n',
      stderr: '',
    });
    assert.equal((await gate.run('echo one && printf two')).stdout, 'one\ntwo');
    const marker = `${scratch}/ran`;
    await assert.rejects(gate.run(['touch', marker]), DeniedError);
    await assert.rejects(gate.run(`echo hi; touch ${marker}`), DeniedError);
    assert.equal(existsSync(marker), false);
  });

  test('checks the program the name resolves to from PATH', async () => {
    const bin = `${scratch}/bin`;
    await mkdir(bin);
    const marker = `${scratch}/fake-ran`;
    await writeFile(`${bin}/echo`, `#!/bin/sh\ntouch ${marker}\n`);
    await chmod(`${bin}/echo`, 0o755);
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
    await assert.rejects(gate.run(['echo', 'hi'], { env }), (error) => {
      assert.ok(error.reason.includes(`${bin}/echo`), error.reason);
      return true;
    });
    assert.equal(existsSync(marker), false);
    await assert.rejects(gate.run(['echo', 'hi'], { shell: true }), TypeError);
  });
});

describe('fetch', () => {
  test('fetches an allowed URL', async () => {
    const server = await web();
    const response = await gate.fetch(`http://127.0.0.1:${server.port}/ok`);
    assert.equal(response.status, 200);
    assert.equal((await response.json()).path, '/ok');
  });

  test('checks every redirect before following it', async () => {
    const elsewhere = await web();
    const server = await web(`http://localhost:${elsewhere.port}/stolen`);
    await assert.rejects(gate.fetch(`http://127.0.0.1:${server.port}/away`), (error) => {
      assert.ok(error instanceof DeniedError);
      assert.match(error.reason, /localhost/);
      return true;
    });
    assert.deepEqual([server.hits, elsewhere.hits], [['GET /away'], []]);
    const inside = await web(`http://127.0.0.1:${elsewhere.port}/fine`);
    const response = await gate.fetch(`http://127.0.0.1:${inside.port}/away`);
    assert.equal((await response.json()).path, '/fine');
  });

  test('refuses other schemes and denied hosts', async () => {
    await assert.rejects(gate.fetch(`file://${files}/secret/key`), TypeError);
    await assert.rejects(gate.fetch('http://169.254.169.254/latest/meta-data/'), DeniedError);
  });
});

describe('kube', () => {
  test('sends an allowed request and holds back the rest', async () => {
    const api = await web();
    const cluster = { server: `http://127.0.0.1:${api.port}`, token: 't0ken' };
    const answer = await gate.kube('GET', '/api/v1/namespaces/apps/pods?limit=5', { cluster });
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.json(), { path: '/api/v1/namespaces/apps/pods?limit=5', auth: 'Bearer t0ken' });
    await assert.rejects(
      gate.kube('DELETE', '/apis/apps/v1/namespaces/apps/deployments/web', { cluster }),
      (error) => {
        assert.equal(error.decision.decision, 'require_approval');
        return true;
      },
    );
    await assert.rejects(
      gate.kube('GET', '/api/v1/namespaces/kube-system/secrets', { cluster }),
      DeniedError,
    );
    assert.deepEqual(api.hits, ['GET /api/v1/namespaces/apps/pods?limit=5']);
  });

  test('outside a pod the in-cluster configuration is refused', () => {
    assert.throws(() => inClusterConfig({}), /not in a Kubernetes pod/);
    assert.deepEqual(
      inClusterConfig({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '6443' }).server,
      'https://[fd00::1]:6443',
    );
  });
});
