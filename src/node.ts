/**
 * @module
 * Explicit Node adapters: the node socket transport and the native crypto provider. Import
 * `@hydra/relay/node` when the automatic choice of `@hydra/relay` should not apply.
 *
 * @example
 * ```ts ignore
 * import { transport, crypto } from "@hydra/relay/node";
 * const listener = await transport.listen({ kind: "tcp", hostname: "127.0.0.1", port: 0 });
 * await listener.close();
 * ```
 */

import { createNativeCrypto } from "./crypto/native.ts";
import type { CryptoProvider } from "./crypto/types.ts";
import { nodeTransport } from "./transport/node.ts";
import type { Transport } from "./transport/types.ts";

export { nodeTransport };
export { createNativeCrypto };

/** The Node socket transport. */
export const transport: Transport = nodeTransport();

/** The native crypto provider with Node's fastest choices. */
export const crypto: CryptoProvider = createNativeCrypto();
