/**
 * @module
 * Explicit Bun adapters: the bun socket transport and the native crypto provider. Import
 * `@hydra/relay/bun` when the automatic choice of `@hydra/relay` should not apply.
 *
 * @example
 * ```ts ignore
 * import { transport, crypto } from "@hydra/relay/bun";
 * const listener = await transport.listen({ kind: "tcp", hostname: "127.0.0.1", port: 0 });
 * await listener.close();
 * ```
 */

import { createNativeCrypto } from "./crypto/native.ts";
import type { CryptoProvider } from "./crypto/types.ts";
import { bunTransport } from "./transport/bun.ts";
import type { Transport } from "./transport/types.ts";

export { bunTransport };
export { createNativeCrypto };

/** The Bun socket transport. */
export const transport: Transport = bunTransport();

/** The native crypto provider with Bun's fastest choices. */
export const crypto: CryptoProvider = createNativeCrypto();
