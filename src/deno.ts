/**
 * @module
 * Explicit Deno adapters: the deno socket transport and the native crypto provider. Import
 * `@hydra/relay/deno` when the automatic choice of `@hydra/relay` should not apply.
 *
 * @example
 * ```ts ignore
 * import { transport, crypto } from "@hydra/relay/deno";
 * const listener = await transport.listen({ kind: "tcp", hostname: "127.0.0.1", port: 0 });
 * await listener.close();
 * ```
 */

import { createNativeCrypto } from "./crypto/native.ts";
import type { CryptoProvider } from "./crypto/types.ts";
import { denoTransport } from "./transport/deno.ts";
import type { Transport } from "./transport/types.ts";

export { denoTransport };
export { createNativeCrypto };

/** The Deno socket transport. */
export const transport: Transport = denoTransport();

/** The native crypto provider with Deno's fastest choices. */
export const crypto: CryptoProvider = createNativeCrypto();
