// A child process for the undo-journal tests (test/unit/machine/journal.test.ts):
// runs one scripted step of a machine with the built code, and kills itself
// with SIGKILL just before its K-th file-changing system call (write, rename,
// unlink, truncate, fsync), as `kill -9` would at that instant.
//
//   node step_child.mjs ROOT SCENARIO K      (K = 0: no kill; prints "calls N")
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [root, scenario, killAt] = process.argv.slice(2);
const K = Number(killAt);
const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'src', 'machine', 'index.js');
const m = await import(dist);
// A real machine's cold reset (src/dump/softboot.ts coldReset): the kernel and dump layers, loaded before counting.
const k = scenario === 'reset' ? await import(path.join(path.dirname(dist), '..', 'kernel', 'index.js')) : null;
const d = scenario === 'reset' ? await import(path.join(path.dirname(dist), '..', 'dump', 'index.js')) : null;

let calls = 0;
for (const name of ['writeSync', 'renameSync', 'unlinkSync', 'rmSync', 'ftruncateSync', 'fsyncSync', 'linkSync']) {
  const orig = fs[name];
  fs[name] = function (...args) {
    calls++;
    if (calls === K) process.kill(process.pid, 'SIGKILL');
    return orig.apply(this, args);
  };
}

const MiB = 1 << 20;
const machine = new m.MachineRoot(root);
const state = (power, cr3) => ({ version: 1, power, ram_bytes: 8n * BigInt(MiB), cpu: power === 'on' ? { cr3, kernel_base: 0x1000000n } : null });
/** Scattered writes: small ones across chunks (some evicted, cache of 4 chunks), and whole-chunk bypass writes. */
function scribble(ram, salt) {
  for (let i = 0; i < 40; i++) {
    const at = BigInt(((i * 7919 + salt * 104729) % (8 * MiB - 64)) & ~7);
    ram.write(at, Buffer.alloc(48, (i + salt) & 0xff));
  }
  ram.write(BigInt(2 * MiB), Buffer.alloc(256 << 10, 0xa0 + salt));
  ram.write(BigInt(5 * MiB + 4096), Buffer.alloc(3 * 4096, 0x5a));
}

switch (scenario) {
  case 'open': {
    const ram = m.PhysicalRam.open(machine.ramPath, 8n * BigInt(MiB), { maxChunks: 4 });
    scribble(ram, 1);
    m.writeState(machine, state('on', 0x2000n));
    ram.flush();
    scribble(ram, 2);
    ram.close();
    break;
  }
  case 'replace': {
    const ram = m.PhysicalRam.create(machine.ramPath, 8n * BigInt(MiB), { maxChunks: 4 });
    m.writeState(machine, state('off', 0n));
    scribble(ram, 3);
    m.writeState(machine, state('on', 0x3000n));
    ram.close();
    break;
  }
  case 'cold-reboot': {
    // A crash that cold-reboots: the old RAM is changed, let go of, and replaced, all in one step.
    const old = m.PhysicalRam.open(machine.ramPath, 8n * BigInt(MiB), { maxChunks: 4 });
    scribble(old, 4);
    old.flush();
    old.detach();
    const ram = m.PhysicalRam.create(machine.ramPath, 8n * BigInt(MiB), { maxChunks: 4 });
    scribble(ram, 5);
    m.writeState(machine, state('on', 0x4000n));
    ram.close();
    break;
  }
  case 'two-steps': {
    const ram = m.PhysicalRam.open(machine.ramPath, 8n * BigInt(MiB), { maxChunks: 4 });
    scribble(ram, 6);
    m.writeState(machine, state('on', 0x5000n));
    ram.commit();
    process.stdout.write(`committed ${calls}\n`);
    scribble(ram, 7);
    m.writeState(machine, state('on', 0x6000n));
    ram.close();
    break;
  }
  case 'locked': {
    // As a command runs: lock, open, change, close, release.
    const lock = m.lockMachine(machine, 'step_child locked');
    const ram = m.PhysicalRam.open(machine.ramPath, 8n * BigInt(MiB), { maxChunks: 4 });
    scribble(ram, 8);
    m.writeState(machine, state('on', 0x7000n));
    ram.close();
    lock.release();
    break;
  }
  case 'reset': {
    // The reset button on a running machine: the RTC caught up with the old kernel, a cold boot
    // that reads it, RAM replaced, the RTC caught up with the new kernel; all one step.
    const lock = m.lockMachine(machine, 'step_child reset');
    k.closeSystem(d.coldReset(k.openSystem(machine)));
    lock.release();
    break;
  }
  default:
    throw new Error(`unknown scenario ${scenario}`);
}
process.stdout.write(`calls ${calls}\n`);
