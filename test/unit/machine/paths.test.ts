/**
 * src/machine/paths.ts: path resolution checked against GNU `realpath -m`
 * (which resolves every link, also in the part of a path that does not
 * exist), containment in a machine root, protected files by path and by
 * inode, bounded non-blocking reads, and outputs written the one safe way.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DumpError } from '../../../src/codec/index.js';
import {
  checkOutputPath, MAX_SYMLINKS, MachineRoot, readRegularFile, resolveInRoot, resolvePath, resolveRoot, writeOutputFile,
  type ProtectedPath,
} from '../../../src/machine/index.js';
import { needs } from '../../helpers/tools.js';
import { ensureBuilt, REPO } from '../../helpers/cli.js';

let tmp: string;
beforeAll(() => { tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-paths-'))); });
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** A fresh directory under tmp. */
function dir(name: string): string {
  const d = path.join(tmp, name);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(DumpError);
    expect((e as Error).message).not.toContain('\n');
    return (e as DumpError).code;
  }
  throw new Error('expected a DumpError');
}

describe('resolvePath agrees with realpath -m', () => {
  const realpath = needs('realpath');
  let d: string;
  const cases: string[] = [];
  beforeAll(() => {
    d = dir('resolve');
    fs.mkdirSync(path.join(d, 'real', 'sub'), { recursive: true });
    fs.writeFileSync(path.join(d, 'real', 'file'), 'x');
    fs.symlinkSync('real', path.join(d, 'rel'));                         // relative link to a directory
    fs.symlinkSync(path.join(d, 'real'), path.join(d, 'abs'));          // absolute link
    fs.symlinkSync('../real/sub', path.join(d, 'real', 'up'));          // link with '..' in its target
    fs.symlinkSync('rel', path.join(d, 'chain'));                       // link to a link
    fs.symlinkSync(path.join(d, 'nowhere', 'deep'), path.join(d, 'dangling')); // target does not exist
    fs.symlinkSync('/', path.join(d, 'toroot'));
    cases.push(
      'real/file', 'rel/file', 'abs/sub', 'real/up/../file', 'chain/up', 'dangling', 'dangling/more/parts',
      'missing/x/../y', 'missing/../rel/file', 'dangling/../../abs/up', 'toroot/tmp', './rel/./sub/..', 'real/sub/../../chain',
    );
  });

  realpath.it('for links relative, absolute, chained, dangling, through .. and into parts that do not exist', () => {
    for (const c of cases) {
      const want = execFileSync('realpath', ['-m', path.join(d, c)], { encoding: 'utf8' }).trim();
      expect(resolvePath(path.join(d, c)), c).toBe(want);
    }
  });

  it(`a link loop ends with one line (code IO) after at most ${MAX_SYMLINKS} links`, () => {
    const l = dir('loop');
    fs.symlinkSync('b', path.join(l, 'a'));
    fs.symlinkSync('a', path.join(l, 'b'));
    expect(codeOf(() => resolvePath(path.join(l, 'a', 'x')))).toBe('IO');
    // A chain of exactly MAX_SYMLINKS links resolves, one more does not (Linux's MAXSYMLINKS).
    const c = dir('chain40');
    fs.writeFileSync(path.join(c, 'end'), '');
    fs.symlinkSync('end', path.join(c, 'l1'));
    for (let i = 2; i <= MAX_SYMLINKS + 1; i++) fs.symlinkSync(`l${i - 1}`, path.join(c, `l${i}`));
    expect(resolvePath(path.join(c, `l${MAX_SYMLINKS}`))).toBe(path.join(c, 'end'));
    expect(codeOf(() => resolvePath(path.join(c, `l${MAX_SYMLINKS + 1}`)))).toBe('IO');
  });

  it('a path through a regular file is refused: not a directory', () => {
    const f = path.join(dir('through-file'), 'plain');
    fs.writeFileSync(f, '');
    expect(() => resolvePath(path.join(f, 'x'))).toThrow(/plain is a regular file, not a directory/);
  });
});

describe('resolveInRoot', () => {
  let root: string;
  let outside: string;
  beforeAll(() => {
    root = dir('root');
    outside = path.join(dir('outside'), 'victim');
    fs.writeFileSync(outside, 'outside');
    fs.mkdirSync(path.join(root, 'dev'));
    fs.mkdirSync(path.join(root, 'log'));
    fs.symlinkSync(outside, path.join(root, 'dev', 'vmdump'));
    fs.symlinkSync(path.dirname(outside), path.join(root, 'log', 'dump'));
    fs.symlinkSync('../inside', path.join(root, 'dev', 'ok'));
    fs.symlinkSync(path.join(path.dirname(outside), 'not-yet'), path.join(root, 'dev', 'dangling'));
  });

  it('takes an absolute value relative to the root, following links that stay inside', () => {
    expect(resolveInRoot(root, '/dev/ok', 'DUMPDEV')).toBe(path.join(root, 'inside'));
    expect(resolveInRoot(root, 'etc/x', 'DUMPDEV')).toBe(path.join(root, 'etc', 'x'));
  });

  it.each([
    ['a link to a file outside', '/dev/vmdump'],
    ['a link to a directory outside, and a path below it', '/log/dump/0/dump.0'],
    ['a dangling link pointing outside', '/dev/dangling'],
  ])('refuses %s (USAGE), naming where it resolves', (_what, value) => {
    expect(() => resolveInRoot(root, value, 'f:7: DUMPDEV')).toThrow(expect.objectContaining({
      code: 'USAGE', message: expect.stringMatching(new RegExp(`^f:7: DUMPDEV '${value}' leaves the machine root: it resolves to ${path.dirname(outside)}`)),
    }));
  });

  it("refuses '..', an empty value and a NUL byte before looking at the disk", () => {
    for (const v of ['/../etc', 'a/../../b', '', 'a\0b']) expect(codeOf(() => resolveInRoot(root, v, 'DUMPDIR')), JSON.stringify(v)).toBe('USAGE');
  });
});

describe('resolveRoot', () => {
  it.each([
    ['/proc/self/x', /resolves to \/proc\/\d+\/x, inside \/proc/],
    ['/sys/kernel', /inside \/sys/],
    ['/dev/shm/lkcd-root', /inside \/dev/],
  ])('refuses a root in a kernel pseudo file system: %s', (root, message) => {
    expect(() => resolveRoot(root)).toThrow(expect.objectContaining({ code: 'USAGE', message: expect.stringMatching(message) }));
  });

  it('refuses a root that is a regular file (IO) and resolves a link to a directory', () => {
    const d = dir('roots');
    fs.writeFileSync(path.join(d, 'file'), '');
    expect(codeOf(() => resolveRoot(path.join(d, 'file')))).toBe('IO');
    fs.mkdirSync(path.join(d, 'real'));
    fs.symlinkSync('real', path.join(d, 'link'));
    expect(resolveRoot(path.join(d, 'link'))).toBe(path.join(d, 'real'));
  });
});

/** Spawns node reading `file` with readRegularFile; resolves with how it ended and how long it took. */
function readInChild(file: string, max: number): Promise<{ code: number | null; signal: string | null; stderr: string; ms: number }> {
  const mod = path.join(REPO, 'dist', 'src', 'machine', 'index.js');
  const script = `import('${mod}').then((m) => { try { m.readRegularFile(${JSON.stringify(file)}, ${max}, 'test file'); } catch (e) { process.stderr.write(e.code + ': ' + e.message); process.exit(3); } });`;
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stderr, ms: Date.now() - t0 }); });
  });
}

describe('readRegularFile', () => {
  beforeAll(() => ensureBuilt());

  it('reads a regular file whole, and refuses one over the limit (USAGE) naming both sizes', () => {
    const f = path.join(dir('read'), 'small');
    fs.writeFileSync(f, 'abcdef');
    expect(readRegularFile(f, 6, 'x').toString()).toBe('abcdef');
    expect(() => readRegularFile(f, 5, 'kernel image')).toThrow(expect.objectContaining({ code: 'USAGE', message: `kernel image ${f} is 6 bytes, more than the 5 allowed` }));
  });

  it('refuses /dev/zero, a character device, at once (IO)', () => {
    expect(() => readRegularFile('/dev/zero', 1 << 20, 'kernel image')).toThrow(expect.objectContaining({ code: 'IO', message: 'kernel image /dev/zero is a character device, not a regular file' }));
  });

  it('refuses a FIFO with no writer without waiting for one (in a child, bounded by a timeout)', async () => {
    const fifo = path.join(dir('fifo'), 'pipe');
    execFileSync('mkfifo', [fifo]);
    const r = await readInChild(fifo, 1 << 20);
    expect(r.signal, 'the child was killed by the timeout: the read blocked').toBeNull();
    expect(r.code).toBe(3);
    expect(r.stderr).toBe(`IO: test file ${fifo} is a FIFO, not a regular file`);
  });

  it('a missing file is NOINPUT naming it', () => {
    const f = path.join(tmp, 'no-such-file');
    expect(() => readRegularFile(f, 10, 'kernel image')).toThrow(expect.objectContaining({ code: 'NOINPUT', message: expect.stringContaining(f) }));
  });
});

describe('outputs', () => {
  let d: string;
  let input: string;
  let protect: ProtectedPath[];
  beforeAll(() => {
    d = dir('out');
    input = path.join(d, 'dump.0');
    fs.writeFileSync(input, 'the input');
    protect = [{ path: input, what: 'the input' }, { path: path.join(d, 'machine'), tree: true, what: 'the machine' }];
    fs.mkdirSync(path.join(d, 'machine'));
    fs.writeFileSync(path.join(d, 'machine', 'ram'), 'ram');
  });

  it('writeOutputFile creates 0600, replaces an existing file (0644 before) whole, and leaves no temporary', () => {
    const out = path.join(d, 'o1');
    fs.writeFileSync(out, 'old content that is longer', { mode: 0o644 });
    fs.chmodSync(out, 0o644);
    expect(writeOutputFile(out, Buffer.from('new'), protect)).toBe(out);
    expect(fs.readFileSync(out, 'utf8')).toBe('new');
    expect(fs.statSync(out).mode & 0o777).toBe(0o600);
    expect(fs.readdirSync(d).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('refuses the input itself, a link to it, a hard link to it and a file under a protected tree (USAGE); they stay unchanged', () => {
    fs.symlinkSync(input, path.join(d, 'sym'));
    fs.linkSync(input, path.join(d, 'hard'));
    fs.linkSync(path.join(d, 'machine', 'ram'), path.join(d, 'ramlink'));
    for (const [target, what] of [[input, 'the input'], [path.join(d, 'sym'), 'the input'], [path.join(d, 'hard'), 'the input'],
      [path.join(d, 'machine', 'ram'), 'the machine'], [path.join(d, 'machine', 'new'), 'the machine'], [path.join(d, 'ramlink'), 'the machine']]) {
      expect(() => writeOutputFile(target, 'x', protect), target).toThrow(expect.objectContaining({
        code: 'USAGE', message: expect.stringMatching(new RegExp(`is ${what}; refusing to write over it$`)),
      }));
    }
    expect(fs.readFileSync(input, 'utf8')).toBe('the input');
    expect(fs.readFileSync(path.join(d, 'machine', 'ram'), 'utf8')).toBe('ram');
    expect(fs.existsSync(path.join(d, 'machine', 'new'))).toBe(false);
  });

  it('refuses a FIFO, a directory and /dev/null at the output (IO) without opening them', () => {
    const fifo = path.join(d, 'fifo');
    execFileSync('mkfifo', [fifo]);
    for (const [target, kind] of [[fifo, 'a FIFO'], [d, 'a directory'], ['/dev/null', 'a character device']]) {
      expect(() => checkOutputPath(target, protect)).toThrow(expect.objectContaining({ code: 'IO', message: `output ${target} is ${kind}; refusing to replace it` }));
    }
  });

  it('writes through a link to the file it names', () => {
    const real = path.join(d, 'real-out');
    fs.symlinkSync(real, path.join(d, 'link-out'));
    expect(writeOutputFile(path.join(d, 'link-out'), 'through', protect)).toBe(real);
    expect(fs.readFileSync(real, 'utf8')).toBe('through');
    expect(fs.lstatSync(path.join(d, 'link-out')).isSymbolicLink()).toBe(true);
  });
});

describe('MachineRoot files', () => {
  it('ownFiles protects lib/machine, boot and etc/sysconfig/dump; outputs also dev and log/dump', () => {
    const m = new MachineRoot('/m');
    const names = (ps: ProtectedPath[]): string[] => ps.map((p) => `${p.path}${p.tree ? '/' : ''}`);
    expect(names(m.ownFiles())).toEqual(['/m/lib/machine/ram', '/m/lib/machine/state.json', '/m/lib/machine/', '/m/boot/', '/m/etc/sysconfig/dump']);
    expect(names(m.outputProtected())).toEqual([...names(m.ownFiles()), '/m/dev/', '/m/log/dump/']);
  });
});
