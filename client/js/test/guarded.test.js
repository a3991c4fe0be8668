// The guarded helpers against the real daemon: real files, real programs, a real web
// server and a loopback stand-in for the Kubernetes API. A denied action never happens.

import assert from 'node:assert/strict';
import {
  chmod,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  symlink,
  unlink,
  writeFile,
} from 'node:fs/promises';
import { existsSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { after, before, describe, test } from 'node:test';

import { commandWords, resolveProgram, shellQuote } from '../src/commands.js';
import { envProxyProblem } from '../src/fetch.js';
import { resolveRealPath } from '../src/files.js';
import { DeniedError, Gate, inClusterConfig } from '../src/index.js';
import { answering, environment, httpAnswer, rawServer, webServer } from './helpers.js';

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

/** A gate that keeps every request it is asked to require, as sent. */
class RecordingGate extends Gate {
  sent = [];

  async require(request) {
    this.sent.push(request);
    return super.require(request);
  }
}

/** A gate that runs `swap` once, right after the first check it was allowed. */
class SwapAfterCheck extends Gate {
  async require(request) {
    const decision = await super.require(request);
    const { swap } = this;
    this.swap = null;
    if (swap) await swap();
    return decision;
  }
}

async function withSwap(swap, action) {
  const swapping = new SwapAfterCheck({ url });
  swapping.swap = swap;
  try {
    return await action(swapping);
  } finally {
    swapping.close();
  }
}

const changedError = (error) => {
  assert.ok(error instanceof DeniedError, String(error));
  assert.equal(error.decision.error, 'changed');
  return true;
};

/** A stand-in gate that allows everything: what a helper then does is all its own. */
async function allowingEverything() {
  const stub = await rawServer(answering(200, '{"allowed": true, "decision": "allow", "reason": "stub"}'));
  servers.push(stub);
  const allowing = new Gate({ url: stub.url });
  servers.push(allowing);
  return allowing;
}

/** A stand-in gate that allows everything and keeps every check it is asked, parsed. */
async function recordingEverything() {
  const asked = [];
  const stub = await rawServer(async (socket, reader) => {
    for (let request = await reader.next(); request !== null; request = await reader.next()) {
      asked.push(JSON.parse(request.subarray(request.indexOf('\r\n\r\n') + 4).toString('utf8')));
      socket.write(httpAnswer(200, '{"allowed": true, "decision": "allow", "reason": "stub"}'));
    }
  });
  servers.push(stub);
  const recording = new Gate({ url: stub.url });
  servers.push(recording);
  return { recording, asked };
}

async function web(redirectTo, code) {
  const server = await webServer(redirectTo, code);
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

describe('openFile through symlinks', () => {
  test('resolves a dangling symlink to where it points, as Python does', async () => {
    const base = `${scratch}/links`;
    await mkdir(`${base}/dir`, { recursive: true });
    await symlink('hop', `${base}/start`); // relative, chained, dangling at the end
    await symlink('dir/../gone/file', `${base}/hop`);
    assert.equal(await resolveRealPath(`${base}/start`), `${base}/gone/file`);
    assert.equal(await resolveRealPath(`${base}/start/more/../x`), `${base}/gone/file/x`);
    await symlink('loop', `${base}/loop`);
    await assert.rejects(resolveRealPath(`${base}/loop/x`), { code: 'ELOOP' });
  });

  test('a dangling symlink is checked where a create would land', async () => {
    await symlink(`${files}/secret/through-link`, `${files}/out/dangling`);
    for (const [path, options] of [
      [`${files}/out/dangling`, {}],
      ['dangling', { cwd: `${files}/out` }],
    ]) {
      await assert.rejects(gate.openFile(path, 'w', options), (error) => {
        assert.equal(error.reason, `realPath: no rule allows file.write of ${files}/secret/through-link`);
        return true;
      });
    }
    assert.equal(existsSync(`${files}/secret/through-link`), false);
  });

  for (const flags of ['w', 'a']) {
    test(`a symlink swapped in as the file is not followed by a create (${flags})`, async () => {
      const checked = `${files}/out/new-${flags}`;
      const outside = `${files}/secret/created-${flags}`;
      await withSwap(
        () => symlink(outside, checked),
        (swapping) => assert.rejects(swapping.openFile(checked, flags), changedError),
      );
      assert.equal(existsSync(outside), false);
    });
  }

  for (const swapped of ['parent', 'grandparent']) {
    test(`a ${swapped} directory swapped for a symlink does not redirect a create`, async () => {
      const top = `${files}/out/tree-${swapped}`;
      const decoy = `${files}/secret/decoy-${swapped}`;
      await mkdir(`${top}/sub`, { recursive: true });
      await mkdir(`${decoy}/sub`, { recursive: true });
      const moved = swapped === 'parent' ? `${top}/sub` : top;
      const linkTo = swapped === 'parent' ? `${decoy}/sub` : decoy;
      const swap = async () => {
        await rename(moved, `${scratch}/moved-${swapped}`);
        await symlink(linkTo, moved);
      };
      await withSwap(swap, (swapping) =>
        assert.rejects(swapping.openFile(`${top}/sub/log.txt`, 'a'), changedError),
      );
      assert.deepEqual(await readdir(`${decoy}/sub`), []);
    });
  }
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
    const path = `${bin}:${process.env.PATH}`;
    // A PATH given in env is an environment-override itself; the program it resolves to is
    // what the check names all the same.
    const recording = new RecordingGate({ url });
    await assert.rejects(recording.run(['echo', 'hi'], { env: { ...process.env, PATH: path } }), DeniedError);
    assert.equal(recording.sent.at(-1).commandLine, `PATH=${shellQuote(path)} ${bin}/echo hi`);
    // The process's own PATH is the one the child inherits: plain argv, the resolved path.
    const saved = process.env.PATH;
    process.env.PATH = path;
    try {
      await assert.rejects(recording.run(['echo', 'hi']), (error) => {
        assert.equal(error.reason, `no rule allows process.exec of ${bin}/echo hi`);
        return true;
      });
    } finally {
      process.env.PATH = saved;
      recording.close();
    }
    assert.deepEqual(recording.sent.at(-1).argv, [`${bin}/echo`, 'hi']);
    assert.equal(existsSync(marker), false);
    await assert.rejects(gate.run(['echo', 'hi'], { shell: true }), TypeError);
    // Run as someone the check does not name.
    await assert.rejects(gate.run(['echo', 'hi'], { uid: 0 }), TypeError);
    await assert.rejects(gate.run(['echo', 'hi'], { gid: 0 }), TypeError);
  });

  for (const entry of ['tools', '', '.']) {
    test(`resolves the PATH entry ${JSON.stringify(entry)} against the run's cwd`, async () => {
      const work = await mkdtemp(`${scratch}/work-`);
      await mkdir(`${work}/tools`);
      const marker = `${work}/planted-ran`;
      await writeFile(`${work}/tools/echo`, `#!/bin/sh\ntouch ${marker}\n`);
      await chmod(`${work}/tools/echo`, 0o755);
      const cwd = entry === 'tools' ? work : `${work}/tools`;
      const recording = new RecordingGate({ url });
      await assert.rejects(recording.run(['echo', 'hi'], { env: { PATH: entry }, cwd }), DeniedError);
      recording.close();
      assert.equal(recording.sent.at(-1).commandLine, `PATH=${shellQuote(entry)} ${work}/tools/echo hi`);
      assert.equal(existsSync(marker), false);
    });
  }

  test('refuses a program found in no PATH directory', async () => {
    await assert.rejects(gate.run(['echo', 'hi'], { env: { PATH: `${scratch}/nowhere` } }), (error) => {
      assert.equal(error.decision.error, 'not_found');
      assert.match(error.reason, /"echo" is not an executable file in any PATH directory/);
      return true;
    });
  });

  test('checks what env adds as shell assignments', async () => {
    const recording = new RecordingGate({ url });
    try {
      const marker = `${scratch}/env-ran`;
      const env = { ...process.env, LD_PRELOAD: '/tmp/x.so' };
      await assert.rejects(recording.run(['echo', 'hi'], { env }), (error) => {
        assert.match(error.reason, /environment-override/);
        return true;
      });
      await assert.rejects(recording.run(`echo hi > ${marker}`, { env }), DeniedError);
      assert.equal(recording.sent.at(-1).commandLine, `export LD_PRELOAD=/tmp/x.so; echo hi > ${marker}`);
      assert.equal(existsSync(marker), false);
      // Sorted by name, each value quoted as a shell word; the child gets the same env.
      const value = "it's $(not run)";
      const result = await recording.run(['printf', 'x y'], { env: { ...process.env, ZED: value, FOO: '1' } });
      assert.equal(result.stdout, 'x y');
      const printf = await resolveProgram('printf');
      assert.equal(recording.sent.at(-1).commandLine, `FOO=1 ZED=${shellQuote(value)} ${printf} 'x y'`);
      // Nothing added or changed (a full copy, or one with a variable removed): plain argv.
      const { HOME: _home, ...fewer } = process.env;
      for (const same of [{ ...process.env }, process.env, fewer]) {
        assert.equal((await recording.run(['echo', 'hi'], { env: same })).stdout, 'hi\n');
        assert.equal(recording.sent.at(-1).commandLine, undefined);
        assert.equal(recording.sent.at(-1).argv[1], 'hi');
      }
      // A name no assignment can set is refused before any check.
      const checks = recording.sent.length;
      for (const name of ['A-B', '1X', '', 'A=B', 'X Y']) {
        await assert.rejects(recording.run(['echo', 'hi'], { env: { ...process.env, [name]: '1' } }), TypeError);
        await assert.rejects(recording.run('echo hi', { env: { ...process.env, [name]: '1' } }), TypeError);
      }
      assert.equal(recording.sent.length, checks);
    } finally {
      recording.close();
    }
  });

  test('checks a program named like an assignment as the program', async () => {
    // Found in the red-team review of 2026-12-07: shellQuote left X=/y bare, the gate
    // read it as an assignment and decided echo, while ./X=/y ran.
    const recording = new RecordingGate({ url });
    try {
      const work = await mkdtemp(`${scratch}/assign-`);
      await mkdir(`${work}/X=`);
      const marker = `${work}/ran`;
      await writeFile(`${work}/X=/y`, `#!/bin/sh\ntouch ${marker}\n`, { mode: 0o755 });
      const env = { ...process.env, NO_COLOR: '1' };
      await assert.rejects(recording.run(['X=/y', 'echo', 'hi'], { env, cwd: work }), DeniedError);
      assert.equal(recording.sent.at(-1).commandLine, "NO_COLOR=1 'X=/y' echo hi");
      assert.equal(existsSync(marker), false);
      assert.equal(commandWords(['/usr/bin/env', 'a=b']), '/usr/bin/env a=b');
    } finally {
      recording.close();
    }
  });

  test('shellQuote writes one shell word, as Python shlex.quote does', () => {
    assert.equal(shellQuote(''), "''");
    assert.equal(shellQuote('/usr/bin/git'), '/usr/bin/git');
    assert.equal(shellQuote('a@b%c+d=e:f,g.h/i-j_K9'), 'a@b%c+d=e:f,g.h/i-j_K9');
    assert.equal(shellQuote('a b'), "'a b'");
    assert.equal(shellQuote("it's"), `'it'"'"'s'`);
    assert.equal(shellQuote('$(x) `y` \\ "z"\n'), `'$(x) \`y\` \\ "z"\n'`);
    assert.equal(shellQuote('é'), "'é'");
  });
});

// Found in the red-team review (repro /tmp/rt6): the gate decides `> gl/config` by its
// lexical path, while the shell writes through `gl -> .git` into .git/config. The client
// checks the real path of each target the gate's answer lists in its normalised request
// (writes, reads).
describe('run: where a redirection lands', () => {
  const denied = (pattern) => (error) => {
    assert.ok(error instanceof DeniedError, String(error));
    assert.match(error.reason, pattern);
    return true;
  };

  test('refuses a redirection writing through a symlink into a denied place', async () => {
    const out = `${files}/out`;
    await symlink(`${files}/secret`, `${out}/to-secret`);
    const recording = new RecordingGate({ url });
    try {
      for (const command of [
        'echo pwned > to-secret/planted',
        'echo pwned >> to-secret/key',
        'echo pwned >| to-secret/key',
        ['sh', '-c', 'echo pwned > to-secret/planted'], // an argv handing a shell a script
      ]) {
        await assert.rejects(
          recording.run(command, { cwd: out }),
          denied(new RegExp(`^realPath: no rule allows file\\.write of ${files}/secret/`)),
        );
      }
      // Checked as openFile checks a file: the lexical path and where it leads.
      const { action, path, realPath, cwd } = recording.sent.at(-1);
      assert.deepEqual(
        { action, path, realPath, cwd },
        {
          action: 'file.write',
          path: `${out}/to-secret/planted`,
          realPath: `${files}/secret/planted`,
          cwd: out,
        },
      );
    } finally {
      recording.close();
    }
    assert.equal(existsSync(`${files}/secret/planted`), false);
    assert.equal(await readFile(`${files}/secret/key`, 'utf8'), 'do not read');
  });

  test('checks and runs a redirection through a symlink to an allowed place', async () => {
    const out = `${files}/out`;
    await mkdir(`${out}/real-dir`);
    await symlink(`${out}/real-dir`, `${out}/alias`);
    const recording = new RecordingGate({ url });
    try {
      await recording.run('echo one > plain.txt', { cwd: out }); // no symlink: nothing more to check
      assert.deepEqual(
        recording.sent.map((request) => request.action),
        ['process.exec'],
      );
      await recording.run('echo two >> alias/new.txt', { cwd: out });
      const { action, path, realPath } = recording.sent.at(-1);
      assert.deepEqual(
        { action, path, realPath },
        {
          action: 'file.write',
          path: `${out}/alias/new.txt`,
          realPath: `${out}/real-dir/new.txt`,
        },
      );
    } finally {
      recording.close();
    }
    assert.equal(await readFile(`${out}/plain.txt`, 'utf8'), 'one\n');
    assert.equal(await readFile(`${out}/real-dir/new.txt`, 'utf8'), 'two\n');
  });

  test('refuses a redirection reading through a symlink from a denied place', async () => {
    const checking = new Gate({ url });
    try {
      // data/escape -> secret/key; the read is allowed by its lexical path.
      await assert.rejects(
        checking.run('cat < data/escape', { cwd: files }),
        (error) =>
          error instanceof DeniedError &&
          error.reason === `realPath: no rule allows file.read of ${files}/secret/key`,
      );
      assert.equal((await checking.run('cat < data/report.csv', { cwd: files })).stdout, 'a,b\n1,2\n');
    } finally {
      checking.close();
    }
  });

  test('refuses a redirection target swapped after its check', async () => {
    const out = `${files}/out`;
    await mkdir(`${out}/hop-a`);
    await symlink(`${out}/hop-a`, `${out}/hop`);
    // Points hop at the denied directory once its real path was allowed.
    class SwapAfterFileCheck extends Gate {
      async require(request) {
        const decision = await super.require(request);
        if (request.action === 'file.write') {
          await unlink(`${out}/hop`);
          await symlink(`${files}/secret`, `${out}/hop`);
        }
        return decision;
      }
    }
    const swapping = new SwapAfterFileCheck({ url });
    try {
      await assert.rejects(swapping.run('echo pwned > hop/swapped', { cwd: out }), (error) => {
        changedError(error);
        assert.equal(
          error.reason,
          `${out}/hop/swapped changed between the check and the run (now leads to ${files}/secret/swapped)`,
        );
        return true;
      });
    } finally {
      swapping.close();
    }
    assert.equal(existsSync(`${files}/secret/swapped`), false);
    assert.equal(existsSync(`${out}/hop-a/swapped`), false);
  });

  for (const requestJson of ['"x"', '{"writes": "/tmp/x"}', '{"reads": [1]}', '{"writes": [null]}']) {
    test(`refuses an allow whose redirection targets cannot be read: ${requestJson}`, async () => {
      const body = `{"allowed": true, "decision": "allow", "reason": "stub", "request": ${requestJson}}`;
      const stub = await rawServer(answering(200, body));
      servers.push(stub);
      const stubbed = new Gate({ url: stub.url });
      const marker = `${scratch}/stub-ran`;
      try {
        await assert.rejects(stubbed.run(`echo hi > ${marker}`), (error) => {
          assert.ok(error instanceof DeniedError, String(error));
          assert.equal(error.decision.error, 'bad_answer');
          return true;
        });
      } finally {
        stubbed.close();
      }
      assert.equal(existsSync(marker), false);
    });
  }
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

  test('follows a Location of raw UTF-8 where fetch itself and the Python client go', async () => {
    // Read as one character per byte and encoded again, '/ré' was checked and fetched as
    // '/r%C3%83%C2%A9' (rt25 r2-clients-ops, 2).
    const server = await web(Buffer.from('/ré?q=é', 'utf8').toString('latin1'));
    const { recording, asked } = await recordingEverything();
    const response = await recording.fetch(`http://127.0.0.1:${server.port}/away`);
    assert.equal((await response.json()).path, '/r%C3%A9?q=%C3%A9');
    const plain = await fetch(`http://127.0.0.1:${server.port}/away`);
    await plain.body?.cancel();
    assert.equal(plain.url, `http://127.0.0.1:${server.port}/r%C3%A9?q=%C3%A9`);
    assert.deepEqual(
      asked.map((check) => check.url),
      [`http://127.0.0.1:${server.port}/away`, plain.url],
    );
  });

  test('refuses a URL with a user name or password before the check, as the Python client does', async () => {
    // The gate allowed and recorded it, then fetch refused to send it (rt25 r2-clients-ops, 3).
    const site = await web();
    const { recording, asked } = await recordingEverything();
    for (const userinfo of ['u:s3cret@', 'u@', 's3cret@', '%C3%BC:s3cret@', 'ü:s3cret@']) {
      await assert.rejects(recording.fetch(`http://${userinfo}127.0.0.1:${site.port}/x`), (error) => {
        assert.ok(error instanceof TypeError, String(error));
        assert.match(error.message, /user name or password/);
        assert.doesNotMatch(error.message, /s3cret/);
        return true;
      });
    }
    const hop = await web(`http://u:s3cret@127.0.0.1:${site.port}/ok`);
    await assert.rejects(recording.fetch(`http://127.0.0.1:${hop.port}/away`), /user name or password/);
    assert.deepEqual(
      asked.map((check) => check.url),
      [`http://127.0.0.1:${hop.port}/away`],
    );
    assert.deepEqual([site.hits, hop.hits], [[], ['GET /away']]);
  });

  test("refuses any other '@' before the path before the check, as the Python client does", async () => {
    // The WHATWG parser drops an empty user name and ends the host at a backslash, so JS
    // checked and fetched http://127.0.0.1/@evil.test/ for 'http://127.0.0.1\@evil.test/',
    // which Python (and RFC 3986) read as the host evil.test, and refuse (rt26).
    const site = await web();
    const { recording, asked } = await recordingEverything();
    for (const written of [
      `http://@127.0.0.1:${site.port}/x`,
      `http://:@127.0.0.1:${site.port}/x`,
      `http://127.0.0.1:${site.port}\\@evil.test/x`,
      `http:\\\\@127.0.0.1:${site.port}/x`,
      `HTTP:/\t/@127.0.0.1:${site.port}/x`,
    ]) {
      await assert.rejects(recording.fetch(written), (error) => {
        assert.ok(error instanceof TypeError, String(error));
        assert.match(error.message, /user name or password/);
        return true;
      });
    }
    for (const location of ['//@127.0.0.1/x', '/\\@127.0.0.1/x', `http://127.0.0.1:${site.port}\\@evil.test/`]) {
      const hop = await web(location);
      await assert.rejects(recording.fetch(`http://127.0.0.1:${hop.port}/away`), /user name or password/);
      assert.deepEqual(hop.hits, ['GET /away']);
    }
    assert.equal(asked.length, 3, 'only the first request of each redirect was checked');
    assert.deepEqual(site.hits, []);
    // An '@' in the path or query is no authority, nor in a Location relative to it.
    for (const path of ['/@scope/pkg', '/x?by=a@b']) {
      const response = await recording.fetch(`http://127.0.0.1:${site.port}${path}`);
      assert.equal((await response.json()).path, path);
    }
    const relative = await web('/@scope/pkg');
    const response = await recording.fetch(`http://127.0.0.1:${relative.port}/away`);
    assert.equal((await response.json()).path, '/@scope/pkg');
  });

  test("refuses a port fetch never connects to (the Fetch standard's bad ports), before the check", async () => {
    // The gate allowed and recorded the request, then undici refused it: 'bad port' (rt26).
    const { recording, asked } = await recordingEverything();
    for (const port of [1, 22, 25, 6000, 6665, 6669, 6697, 10080]) {
      await assert.rejects(recording.fetch(`http://127.0.0.1:${port}/x`), (error) => {
        assert.ok(error instanceof TypeError, String(error));
        assert.match(error.message, new RegExp(`refuses port ${port}: fetch never connects to it`));
        return true;
      });
    }
    const hop = await web('http://127.0.0.1:22/x');
    await assert.rejects(recording.fetch(`http://127.0.0.1:${hop.port}/away`), /refuses port 22/);
    assert.deepEqual(
      asked.map((check) => check.url),
      [`http://127.0.0.1:${hop.port}/away`],
    );
  });

  test('refuses a backslash before the path before the check, as the Python client does', async () => {
    // Node's parser reads 'http://127.0.0.1:PORT\evil.test/x' as http://127.0.0.1:PORT/evil.test/x,
    // where Python reads the host 127.0.0.1:PORT\evil.test: the two clients would check
    // and fetch different hosts (rt26).
    const site = await web();
    const { recording, asked } = await recordingEverything();
    for (const written of [
      `http://127.0.0.1:${site.port}\\evil.test/x`,
      `http://127.0.0.1\\:${site.port}/x`,
      `http:\\\\127.0.0.1:${site.port}/x`,
      `http:/\\127.0.0.1:${site.port}/x`,
      `HTTP:/\t/127.0.0.1:${site.port}\\x`,
    ]) {
      await assert.rejects(recording.fetch(written), (error) => {
        assert.ok(error instanceof TypeError, String(error));
        assert.match(error.message, /backslash before its path/);
        return true;
      });
    }
    for (const location of ['/\\127.0.0.1/x', `http://127.0.0.1:${site.port}\\evil.test/`]) {
      const hop = await web(location);
      await assert.rejects(recording.fetch(`http://127.0.0.1:${hop.port}/away`), /backslash before its path/);
      assert.deepEqual(hop.hits, ['GET /away']);
    }
    assert.equal(asked.length, 2, 'only the first request of each redirect was checked');
    assert.deepEqual(site.hits, []);
  });

  // The same table as the Python client's test_fetch_follows_a_redirect_as_the_fetch_standard_does.
  for (const [code, method, sent] of [
    [307, 'POST', 'POST'],
    [308, 'PUT', 'PUT'],
    [301, 'PATCH', 'PATCH'],
    [302, 'DELETE', 'DELETE'],
    [301, 'POST', 'GET'],
    [302, 'POST', 'GET'],
    [303, 'POST', 'GET'],
    [303, 'PUT', 'GET'],
  ]) {
    test(`follows a ${code} after a ${method} with a ${sent}, as the Fetch standard does`, async () => {
      const target = await web();
      const hop = await web(`http://127.0.0.1:${target.port}/ok`, code);
      const body = '{"n": 1}';
      const headers = { 'Content-Type': 'application/json', 'X-Trace': 't1' };
      const response = await gate.fetch(`http://127.0.0.1:${hop.port}/away`, { method, body, headers });
      assert.equal(response.status, 200);
      await response.arrayBuffer();
      assert.deepEqual([hop.hits, hop.bodies], [[`${method} /away`], [body]]);
      assert.deepEqual(target.hits, [`${sent} /ok`]);
      assert.equal(target.headers[0]['x-trace'], 't1');
      if (sent === method) {
        assert.deepEqual(target.bodies, [body]);
        assert.equal(target.headers[0]['content-type'], 'application/json');
      } else {
        assert.deepEqual(target.bodies, ['']);
        assert.equal(target.headers[0]['content-type'], undefined);
      }
    });
  }

  test('never goes through a proxy the gate did not check', async () => {
    assert.equal(envProxyProblem({ HTTPS_PROXY: 'http://proxy:3128' }, []), null);
    assert.equal(envProxyProblem({ NODE_USE_ENV_PROXY: '1' }, []), null);
    for (const [env, argv] of [
      [{ NODE_USE_ENV_PROXY: '1', https_proxy: 'http://proxy:3128' }, []],
      [{ NODE_OPTIONS: '--no-warnings --use-env-proxy', HTTP_PROXY: 'http://proxy:3128' }, []],
      [{ HTTP_PROXY: 'http://proxy:3128' }, ['--use-env-proxy']],
    ]) {
      assert.match(envProxyProblem(env, argv), /proxy the gate never checked/);
    }
    const proxy = await web();
    const server = await web();
    const saved = { NODE_USE_ENV_PROXY: process.env.NODE_USE_ENV_PROXY, HTTP_PROXY: process.env.HTTP_PROXY };
    Object.assign(process.env, { NODE_USE_ENV_PROXY: '1', HTTP_PROXY: `http://127.0.0.1:${proxy.port}` });
    try {
      await assert.rejects(gate.fetch(`http://127.0.0.1:${server.port}/ok`), /NODE_USE_ENV_PROXY/);
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
    const dispatcher = { dispatch: () => false };
    await assert.rejects(gate.fetch(`http://127.0.0.1:${server.port}/ok`, { dispatcher }), /dispatcher/);
    assert.deepEqual([proxy.hits, server.hits], [[], []]);
  });

  test('sends the method it checked, whatever object names it', async () => {
    // toUpperCase once gave an object read as GET for the check (toJSON) and sent as
    // DELETE (toString) by fetch (red-team review).
    const site = await web();
    const { recording, asked } = await recordingEverything();
    const method = {
      toString: () => 'delete',
      toUpperCase: () => ({ toJSON: () => 'GET', toString: () => 'DELETE' }),
    };
    const response = await recording.fetch(`http://127.0.0.1:${site.port}/ok`, { method });
    await response.body?.cancel();
    assert.deepEqual(asked.map((check) => check.method), ['DELETE']);
    assert.deepEqual(site.hits, ['DELETE /ok']);
  });

  test('refuses a header asking the server for another method, before the check', async () => {
    // Passed through: a backend honouring X-HTTP-Method-Override ran a DELETE where the
    // gate checked (and an approval bound) a GET or a POST (rt26).
    const site = await web();
    const { recording, asked } = await recordingEverything();
    for (const name of ['X-HTTP-Method-Override', 'x-http-method', 'X-METHOD-OVERRIDE']) {
      for (const [method, value] of [['GET', 'DELETE'], ['POST', 'post']]) {
        for (const headers of [{ [name]: value }, new Headers({ [name]: value }), [[name, value]]]) {
          await assert.rejects(recording.fetch(`http://127.0.0.1:${site.port}/x`, { method, headers }), (error) => {
            assert.ok(error instanceof TypeError, String(error));
            assert.match(error.message, new RegExp(`${name} header: .*runs that method`, 'i'));
            return true;
          });
        }
      }
    }
    assert.deepEqual([asked, site.hits], [[], []]);
    const response = await recording.fetch(`http://127.0.0.1:${site.port}/x`, { headers: { 'X-Method': 'DELETE' } });
    assert.equal(response.status, 200);
  });

  test('refuses a Host header for another host', async () => {
    const server = await web();
    const target = `http://127.0.0.1:${server.port}/ok`;
    await assert.rejects(gate.fetch(target, { headers: { Host: 'evil.test' } }), /Host header/);
    assert.deepEqual(server.hits, []);
    const response = await gate.fetch(target, { headers: { host: `127.0.0.1:${server.port}` } });
    assert.equal(response.status, 200);
  });

  test('checks and sends the URL without its fragment, as the Python client does', async () => {
    // The href kept '#x#y', which the gate refuses in a path (invalid_request), while
    // Python cut it at the first '#' and was allowed (rt25 clients review, 4).
    const site = await web();
    const { recording, asked } = await recordingEverything();
    for (const fragment of ['#x#y', '#', '#/../../secret']) {
      const response = await gate.fetch(`http://127.0.0.1:${site.port}/ok${fragment}`);
      assert.equal((await response.json()).path, '/ok');
      await (await recording.fetch(`http://127.0.0.1:${site.port}/ok${fragment}`)).body?.cancel();
    }
    assert.deepEqual(
      asked.map((check) => check.url),
      Array(3).fill(`http://127.0.0.1:${site.port}/ok`),
    );
    assert.deepEqual(site.hits, Array(6).fill('GET /ok'));
  });

  test('refuses a header value undici would not send, before the check', async () => {
    // Headers took \x01 and \x7f; undici refused them after the gate had recorded an
    // allow (rt25 review of the last fixes).
    const site = await web();
    const { recording, asked } = await recordingEverything();
    for (const value of ['a\x01b', 'a\x7fb']) {
      await assert.rejects(
        recording.fetch(`http://127.0.0.1:${site.port}/x`, { headers: { 'X-A': value } }),
        (error) => {
          assert.ok(error instanceof TypeError, String(error));
          assert.match(error.message, /^gate\.fetch: /);
          return true;
        },
      );
    }
    assert.deepEqual([asked, site.hits], [[], []]);
    const response = await recording.fetch(`http://127.0.0.1:${site.port}/x`, { headers: { 'X-A': 'tab\there é' } });
    assert.equal(response.status, 200);
  });

  test('refuses headers that frame the message, before the check, in any letter case', async () => {
    // The docs promised it for both clients; the JS fetch asked the gate (an allow
    // recorded) and left the names to undici, which sent Connection, TE, Trailer and
    // Proxy-* and stalled on Content-Length: 0 (rt25 clients review, 1).
    const site = await web();
    const { recording, asked } = await recordingEverything();
    const second = 'DELETE /api/v1/namespaces/prod/secrets/db HTTP/1.1\r\nHost: x\r\n\r\n';
    for (const [name, value] of [
      ['Content-Length', '0'], ['transfer-encoding', 'chunked'], ['Connection', 'close'],
      ['Keep-Alive', 'timeout=5'], ['Upgrade', 'h2c'], ['TE', 'trailers'], ['Trailer', 'X-Foo'],
      ['EXPECT', '100-continue'], ['Proxy-Authorization', 'Basic eA=='], ['proxy-foo', 'x'],
    ]) {
      for (const headers of [{ [name]: value }, new Headers({ [name]: value }), [[name, value]]]) {
        await assert.rejects(
          recording.fetch(`http://127.0.0.1:${site.port}/x`, { method: 'POST', body: second, headers }),
          (error) => {
            assert.ok(error instanceof TypeError, String(error));
            assert.match(error.message, new RegExp(`${name}.*frame a second request`, 'i'));
            return true;
          },
        );
      }
    }
    assert.deepEqual([asked, site.hits], [[], []]);
    const response = await recording.fetch(`http://127.0.0.1:${site.port}/x`, { headers: { 'X-Trace': 't1' } });
    assert.equal(response.status, 200);
    assert.equal(site.headers[0]['x-trace'], 't1');
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

  test('refuses impersonation headers', async () => {
    const api = await web();
    const cluster = { server: `http://127.0.0.1:${api.port}`, token: 't0ken' };
    for (const header of ['Impersonate-User', 'impersonate-group', 'Impersonate-Extra-Scopes']) {
      await assert.rejects(
        gate.kube('GET', '/api/v1/namespaces/apps/pods', { cluster, headers: { [header]: 'x' } }),
        new RegExp(header),
      );
    }
    assert.deepEqual(api.hits, []);
  });

  test('refuses credential headers, which would replace the cluster token', async () => {
    // A caller's Authorization replaced the token: the request ran as whoever it named,
    // and the gate never saw who (rt25 k8s review, F2). The Python client refuses the same.
    const api = await web();
    const cluster = { server: `http://127.0.0.1:${api.port}`, token: 't0ken' };
    const path = '/api/v1/namespaces/apps/pods';
    const credentials = ['Authorization', 'authorization', 'AUTHORIZATION', 'Cookie', 'cookie'];
    for (const name of [...credentials, 'Proxy-Authorization']) {
      await assert.rejects(
        gate.kube('GET', path, { cluster, headers: { [name]: 'Bearer admin' } }),
        (error) => {
          assert.ok(error instanceof TypeError, String(error));
          assert.match(error.message, new RegExp(name));
          // Proxy-Authorization is refused earlier, with the other Proxy-* fields.
          if (!name.toLowerCase().startsWith('proxy-')) assert.match(error.message, /cluster\.token/);
          return true;
        },
      );
    }
    assert.deepEqual(api.hits, []);
    await gate.kube('GET', path, { cluster });
    assert.equal(api.headers.at(-1).authorization, 'Bearer t0ken');
  });

  test('sends the path byte for byte as checked, and only to the cluster server', async () => {
    const api = await web();
    const elsewhere = await web();
    const cluster = { server: `http://127.0.0.1:${api.port}`, token: 't0ken' };
    // The real gate refuses the first two paths itself; the client must not depend on it.
    const paths = [
      `//127.0.0.1:${elsewhere.port}/api/v1/namespaces/apps/pods`,
      '/api/v1/namespaces/apps/pods/x/../../../kube-system/secrets',
      "/api/v1/namespaces/apps/pods?labelSelector=tier='web'",
    ];
    const stub = await allowingEverything();
    for (const path of paths) assert.equal((await stub.kube('GET', path, { cluster })).status, 200);
    assert.deepEqual(elsewhere.hits, []);
    assert.deepEqual(api.hits, paths.map((path) => `GET ${path}`));
    // The real gate allows the last one: it gets exactly that path too.
    await gate.kube('GET', paths[2], { cluster });
    assert.equal(api.hits.at(-1), `GET ${paths[2]}`);
  });

  test('sends the path it checked, whatever object names it', async () => {
    // The check read the path with toJSON, the request line with toString (red-team
    // review, F5): one object named pods to the gate and secrets to the API server.
    const api = await web();
    const cluster = { server: `http://127.0.0.1:${api.port}`, token: 't0ken' };
    const { recording, asked } = await recordingEverything();
    const secrets = '/api/v1/namespaces/kube-system/secrets';
    const path = { toJSON: () => '/api/v1/namespaces/apps/pods', toString: () => secrets };
    await recording.kube('GET', path, { cluster });
    assert.deepEqual(asked.map((check) => check.k8s), [{ method: 'GET', path: secrets }]);
    assert.deepEqual(api.hits, [`GET ${secrets}`]);
  });

  test('refuses a header Node would not send before the check, as the Python client does', async () => {
    // Node refused them only when sending, after the gate had recorded an allow
    // (rt25 r2-clients-ops, 4).
    const api = await web();
    const cluster = { server: `http://127.0.0.1:${api.port}`, token: 't0ken' };
    const { recording, asked } = await recordingEverything();
    const path = '/api/v1/namespaces/apps/pods';
    for (const headers of [
      { 'Authorızation': 'Bearer X' }, // a dotless i: not a token
      { 'X A': '1' },
      { 'X-A': '1\r\nAuthorization: Bearer X' },
      { 'X-A': '1\n' },
      { 'X-A': '1\0' },
      { 'X-A': '\u0100' },
    ]) {
      await assert.rejects(recording.kube('GET', path, { cluster, headers }), (error) => {
        assert.ok(error instanceof TypeError, String(error));
        assert.match(error.message, /^gate\.kube: /);
        assert.doesNotMatch(error.message, /Bearer/);
        return true;
      });
    }
    assert.deepEqual([asked, api.hits], [[], []]);
  });

  test('takes headers only as a plain object', async () => {
    const api = await web();
    const cluster = { server: `http://127.0.0.1:${api.port}`, token: 't0ken' };
    const path = '/api/v1/namespaces/apps/pods';
    for (const headers of [
      new Headers({ 'Impersonate-User': 'admin' }),
      [['Impersonate-User', 'admin']],
      new Map([['Impersonate-User', 'admin']]),
      'Impersonate-User: admin',
    ]) {
      await assert.rejects(
        gate.kube('GET', path, { cluster, headers }),
        (error) => error instanceof TypeError && /plain object/.test(error.message),
      );
    }
    assert.deepEqual(api.hits, []);
    await gate.kube('GET', path, { cluster, headers: { 'X-Trace': '1' } });
    assert.equal(api.hits.at(-1), `GET ${path}`);
  });

  test('refuses a Host header and a server that is not http(s)', async () => {
    const api = await web();
    const cluster = { server: `http://127.0.0.1:${api.port}`, token: 't0ken' };
    for (const name of ['Host', 'host', 'HOST ']) {
      await assert.rejects(
        gate.kube('GET', '/api/v1/namespaces/apps/pods', { cluster, headers: { [name]: 'other.example' } }),
        (error) => error instanceof TypeError && /Host header/.test(error.message),
      );
    }
    await assert.rejects(
      gate.kube('GET', '/api/v1/namespaces/apps/pods', { cluster: { server: `ftp://127.0.0.1:${api.port}` } }),
      /http\(s\) URL/,
    );
    assert.deepEqual(api.hits, []);
  });

  test('refuses headers that frame the message: they could smuggle a second request', async () => {
    // Content-Length: 0 and Connection: keep-alive made the body a second request (a
    // DELETE the gate never saw) that a Go server served (review of 2026-12-07).
    const api = await web();
    const cluster = { server: `http://127.0.0.1:${api.port}`, token: 't0ken' };
    const second = 'DELETE /api/v1/namespaces/prod/secrets/db HTTP/1.1\r\nHost: x\r\n\r\n';
    for (const headers of [
      { 'Content-Length': '0', Connection: 'keep-alive' },
      { 'content-length': '0' },
      { 'Transfer-Encoding': 'chunked' },
      { Connection: 'keep-alive' },
      { Expect: '100-continue' },
      { 'Proxy-Authorization': 'Basic eA==' },
    ]) {
      await assert.rejects(
        gate.kube('GET', '/api/v1/namespaces/apps/configmaps', { cluster, headers, body: second }),
        (error) => error instanceof TypeError && /frame a second request/.test(error.message),
      );
    }
    assert.deepEqual(api.hits, []);
  });

  test('outside a pod the in-cluster configuration is refused', () => {
    assert.throws(() => inClusterConfig({}), /not in a Kubernetes pod/);
    assert.deepEqual(
      inClusterConfig({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '6443' }).server,
      'https://[fd00::1]:6443',
    );
  });
});

describe("the helpers' own timeouts", () => {
  // kube passed any timeout to the socket and run to spawn: a NaN or negative one failed
  // only after the check was sent, an infinite one waited forever. Each is now refused
  // like new Gate({timeout}), before any check.
  for (const timeout of [Number.NaN, -1, 0, Infinity, '30000', true, 2 ** 31]) {
    test(`refuses ${String(timeout)} before any check`, async () => {
      const api = await web();
      const cluster = { server: `http://127.0.0.1:${api.port}`, token: 't0ken' };
      const marker = `${scratch}/timeout-ran`;
      const recording = new RecordingGate({ url });
      try {
        await assert.rejects(
          recording.kube('GET', '/api/v1/namespaces/apps/pods', { cluster, timeout }),
          (error) => error instanceof RangeError && /gate\.kube timeout must be a finite number/.test(error.message),
        );
        await assert.rejects(
          recording.run(['touch', marker], { timeout }),
          (error) => error instanceof RangeError && /gate\.run timeout must be a finite number/.test(error.message),
        );
      } finally {
        recording.close();
      }
      assert.deepEqual(recording.sent, []);
      assert.deepEqual(api.hits, []);
      assert.equal(existsSync(marker), false);
    });
  }

  test("kube's timeout bounds the whole call, not each read", async () => {
    // A server sending a byte every 0.4 s kept a call with a 1 s timeout going for
    // 24.8 s (review of 2026-12-07): the socket's timeout is per idle spell.
    const server = net.createServer((socket) => {
      socket.once('data', () => {
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n'); // 8 s of drip
        const drip = setInterval(() => socket.write('x'), 200);
        socket.on('close', () => clearInterval(drip));
        socket.on('error', () => clearInterval(drip));
      });
    });
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const cluster = { server: `http://127.0.0.1:${server.address().port}`, token: 't0ken' };
      await assert.rejects(
        gate.kube('GET', '/api/v1/namespaces/apps/pods', { cluster, timeout: 1000 }),
        /did not answer within 1000 ms/,
      );
    } finally {
      server.close();
    }
  });

  test('takes a valid timeout, and none for run', async () => {
    const api = await web();
    const cluster = { server: `http://127.0.0.1:${api.port}`, token: 't0ken' };
    const answer = await gate.kube('GET', '/api/v1/namespaces/apps/pods', { cluster, timeout: 5000 });
    assert.equal(answer.status, 200);
    for (const timeout of [undefined, null, 5000]) {
      assert.equal((await gate.run(['echo', 'hi'], { timeout })).stdout, 'hi\n');
    }
  });
});
