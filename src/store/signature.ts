import { createHash } from 'node:crypto';

/** panic() prints this in front of its message; dh_panic_string holds only the message. */
export const PANIC_PREFIX = 'Kernel panic - not syncing: ';

/** Hex digits of sha256 kept in a signature: 64 bits, plenty for grouping. */
export const SIGNATURE_HEX_DIGITS = 16;

// Order matters: a symbol's "+0x16/0x20" goes first so that the slash does
// not survive as debris; then addresses, then plain numbers.
const SYMBOL_OFFSET = /\+0x[0-9a-f]+(?:\/0x[0-9a-f]+)?/gi;
const HEX_PREFIXED = /\b0x[0-9a-f]+\b/gi;
/** Bare addresses and hashes ("ffff888012345678"): 12+ hex digits, or 8+ with a decimal digit among them. */
const HEX_RUN = /\b(?:[0-9a-f]{12,}|(?=[0-9a-f]*\d)[0-9a-f]{8,})\b/gi;
/** Decimal numbers: PIDs, CPUs, exit codes, "[   12.345678]" timestamps. */
const DECIMAL = /\b\d+(?:\.\d+)?\b/g;
/** Brackets emptied by the rules above: "bash[]", "[<>]", "()". */
const EMPTY_BRACKETS = /\[\s*\]|<\s*>|\(\s*\)|\{\s*\}/g;

/** "[<ffffffff81234567>] sysrq_handle_crash+0x16/0x20 [mod]" -> symbol, offset, module. */
const CALL_SITE = /^(?:\[<[0-9a-f]+>\]\s*)?([^\s+/]+)(?:\+(0x[0-9a-f]+)(?:\/0x[0-9a-f]+)?)?(?:\s+(\[[^\]\s]+\]))?/i;

/**
 * Reduces a panic message to what stays the same across occurrences of the
 * same bug: numbers, addresses, PIDs and symbol offsets removed, whitespace
 * collapsed. panic()'s own prefix is dropped so that a message with and
 * without it normalise alike.
 */
export function normalisePanicString(panicString: string): string {
  let s = panicString.trim();
  if (s.startsWith(PANIC_PREFIX)) s = s.slice(PANIC_PREFIX.length);
  s = s.replace(SYMBOL_OFFSET, '').replace(HEX_PREFIXED, '').replace(HEX_RUN, '').replace(DECIMAL, '');
  for (let prev = ''; prev !== s;) {
    prev = s;
    s = s.replace(EMPTY_BRACKETS, '');
  }
  return s.replace(/\s+/g, ' ').trim();
}

/**
 * Splits a call site such as "sim_driver_oops+0x2a/0x60 [sim_driver]" into
 * the symbol with its module ("sim_driver_oops [sim_driver]", which the
 * signature hashes) and the symbol with its offset but without the function
 * size ("sim_driver_oops+0x2a [sim_driver]", which the text shows).
 */
export function parseCallSite(callSite: string): { symbol: string; shown: string } {
  const t = callSite.trim();
  const m = CALL_SITE.exec(t);
  if (!m) return { symbol: t, shown: t };
  const [, name, offset, module] = m;
  const mod = module ? ` ${module}` : '';
  return { symbol: `${name}${mod}`, shown: `${name}${offset ? `+${offset.toLowerCase()}` : ''}${mod}` };
}

/**
 * The panic signature used to group duplicate dumps: the first
 * SIGNATURE_HEX_DIGITS hex digits of sha256(normalised message + '@' +
 * call-site symbol). The call site's offset is left out so that a rebuilt
 * kernel with the same bug still groups; `text` keeps it for people.
 */
export function panicSignature(panicString: string, callSite: string): { signature: string; text: string } {
  const normalised = normalisePanicString(panicString);
  const { symbol, shown } = parseCallSite(callSite);
  const signature = createHash('sha256').update(`${normalised}@${symbol}`, 'utf8').digest('hex')
    .slice(0, SIGNATURE_HEX_DIGITS);
  return { signature, text: `${PANIC_PREFIX}${normalised} @ ${shown}` };
}
