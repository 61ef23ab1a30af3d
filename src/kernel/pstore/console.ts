import type { Kernel } from '../kernel.js';
import { hasSymbol, readRamoops, ramoopsWriteConsole } from './ramoops.js';
import { PSTORE_STATE_CONSOLE, pstore_state, type PstoreState } from './structs/pstore_state.js';

/** The kernel variable of the pstore core. */
export const PSTORE_STATE_SYMBOL = 'pstore_state';

/** The pstore core's state, or null in a kernel built without it. */
export function readPstoreState(kernel: Kernel): PstoreState | null {
  if (!hasSymbol(kernel, PSTORE_STATE_SYMBOL)) return null;
  return kernel.readStruct(pstore_state, PSTORE_STATE_SYMBOL);
}

export function writePstoreState(kernel: Kernel, s: PstoreState): void {
  kernel.writeStruct(pstore_state, PSTORE_STATE_SYMBOL, s);
}

/** One printk record as a console prints it (record_print_text without syslog prefix): "[    1.234567] text\n". */
export function consoleLine(tsNsec: bigint, text: string): string {
  const sec = tsNsec / 1_000_000_000n;
  const usec = (tsNsec % 1_000_000_000n) / 1000n;
  return `[${sec.toString().padStart(5, ' ')}.${usec.toString().padStart(6, '0')}] ${text}\n`;
}

/**
 * pstore_console_write(): what printk prints to consoles also goes to the
 * console zone, once pstore registered its console, for lines below the
 * console log level. Called by printk for every record it stores; does
 * nothing in a kernel without a pstore console.
 */
export function pstoreConsoleWrite(kernel: Kernel, level: number, tsNsec: bigint, text: string): void {
  const s = readPstoreState(kernel);
  if (!s || !(s.flags & PSTORE_STATE_CONSOLE) || level >= s.console_loglevel) return;
  const cxt = readRamoops(kernel);
  if (cxt) ramoopsWriteConsole(kernel, cxt, Buffer.from(consoleLine(tsNsec, text), 'latin1'));
}
