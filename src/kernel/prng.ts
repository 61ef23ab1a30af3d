/** The seeded PRNG lives with the hardware (devices use it too); the kernel's modules import it from here. */
export { Prng } from '../machine/prng.js';
