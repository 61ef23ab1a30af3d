import fs from 'node:fs';
import { DumpError, ioError } from '../codec/index.js';
import { fdSource, type DumpSource } from './formats/types.js';

/** Faults a test can inject into the dump device (the fault matrix). */
export interface DeviceFaults {
  /** Writes reaching this device offset or beyond fail with EIO: a device failing part-way. */
  eioFromOffset?: bigint;
}

/** Reads LKCD_FAULT_DEVICE_EIO_FROM (a byte offset) from the environment, for fault tests that spawn the CLI. */
export function faultsFromEnv(env: NodeJS.ProcessEnv = process.env): DeviceFaults {
  const v = env.LKCD_FAULT_DEVICE_EIO_FROM;
  return v && /^\d+$/.test(v) ? { eioFromOffset: BigInt(v) } : {};
}

/** The error a failing device gives: code IO, with the offset of the write that failed. */
export function isDeviceIoError(e: unknown): e is DumpError {
  return e instanceof DumpError && e.code === 'IO' && e.where.offset !== undefined;
}

/**
 * The dump device (DUMPDEV): a block-device image file of fixed size.
 * Positioned writes, fsync, and injectable I/O errors.
 */
export class BlockDevice {
  private constructor(readonly path: string, private readonly fd: number, readonly size: bigint, private readonly faults: DeviceFaults) {}

  static open(path: string, opts: { write?: boolean; faults?: DeviceFaults } = {}): BlockDevice {
    let fd: number;
    try {
      // O_NONBLOCK: a FIFO put where the device should be is refused below, not waited on.
      const { O_RDWR, O_RDONLY, O_NONBLOCK } = fs.constants;
      fd = fs.openSync(path, (opts.write ? O_RDWR : O_RDONLY) | O_NONBLOCK);
    } catch (e) {
      throw ioError('opening dump device', e as NodeJS.ErrnoException);
    }
    const st = fs.fstatSync(fd);
    if (!st.isFile() && !st.isBlockDevice()) {
      fs.closeSync(fd);
      throw new DumpError('USAGE', `dump device ${path} is not a file or block device`, { file: path });
    }
    return new BlockDevice(path, fd, BigInt(st.size), opts.faults ?? {});
  }

  /** Creates a sparse device image of `size` bytes (mode 0600) if none exists. */
  static ensure(path: string, size: bigint): void {
    if (fs.existsSync(path)) return;
    try {
      const fd = fs.openSync(path, 'wx', 0o600);
      fs.ftruncateSync(fd, Number(size));
      fs.fsyncSync(fd);
      fs.closeSync(fd);
    } catch (e) {
      throw ioError('creating dump device', e as NodeJS.ErrnoException);
    }
  }

  write(offset: bigint, data: Uint8Array): void {
    if (offset + BigInt(data.length) > this.size) {
      throw new DumpError('IO', `${this.path}: write of ${data.length} bytes at ${offset} past the end of the device (${this.size} bytes)`, { file: this.path, offset });
    }
    const bad = this.faults.eioFromOffset;
    if (bad !== undefined && offset + BigInt(data.length) > bad) {
      throw new DumpError('IO', `${this.path}: input/output error writing at offset ${offset > bad ? offset : bad}`, { file: this.path, offset: offset > bad ? offset : bad });
    }
    let done = 0;
    try {
      while (done < data.length) done += fs.writeSync(this.fd, data, done, data.length - done, Number(offset) + done);
    } catch (e) {
      throw ioError(`writing dump device at offset ${offset}`, e as NodeJS.ErrnoException);
    }
  }

  read(offset: bigint, length: number): Buffer {
    if (offset < 0n || offset + BigInt(length) > this.size) {
      throw new DumpError('TRUNCATED', `${this.path}: read of ${length} bytes at ${offset} past the end of the device (${this.size} bytes)`, { file: this.path, offset });
    }
    const out = Buffer.alloc(length);
    this.readInto(offset, out);
    return out;
  }

  /** Fills `out` from `offset` (zeros past the end of the file), for readers that reuse one buffer. */
  readInto(offset: bigint, out: Uint8Array): void {
    const length = out.length;
    if (offset < 0n || offset + BigInt(length) > this.size) {
      throw new DumpError('TRUNCATED', `${this.path}: read of ${length} bytes at ${offset} past the end of the device (${this.size} bytes)`, { file: this.path, offset });
    }
    let done = 0;
    while (done < length) {
      const n = fs.readSync(this.fd, out, done, length - done, Number(offset) + done);
      if (n === 0) break;
      done += n;
    }
    out.fill(0, done);
  }

  /** The device's bytes from `base` on (the dump starts at DUMP_HEADER_OFFSET), for the format readers. */
  dumpSource(base: bigint): DumpSource {
    if (base > this.size) throw new DumpError('TRUNCATED', `${this.path}: ${this.size} bytes end before offset ${base}`, { file: this.path, offset: base });
    return fdSource(this.path, this.fd, this.size - base, base, false);
  }

  sync(): void {
    try {
      fs.fsyncSync(this.fd);
    } catch (e) {
      throw ioError('syncing dump device', e as NodeJS.ErrnoException);
    }
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}
