import { bitfields, defineStruct, u16, u64, u8, type ValueOf } from '../../codec/index.js';

/**
 * struct printk_log (kernel/printk/printk.c, v3.5..v5.9, no
 * CONFIG_PRINTK_CALLER): a 16-byte header, then text_len bytes of text,
 * then dict_len bytes of dictionary, padded to LOG_ALIGN. `flags_level`
 * is the byte of the C bitfields `u8 flags:5, level:3` (flags in the low
 * bits): the codec reads the byte, the debug vmlinux declares the bitfields.
 */
export const printk_log = defineStruct('printk_log', {
  ts_nsec: u64,
  len: u16,
  text_len: u16,
  dict_len: u16,
  facility: u8,
  flags_level: bitfields(u8, [{ name: 'flags', bits: 5 }, { name: 'level', bits: 3 }]),
});
export type PrintkLog = ValueOf<typeof printk_log>;
