#!/usr/bin/env node
/**
 * @module
 * The `hydra-relay` executable of the npm package (`npx hydra-relay …`). On Deno and Bun,
 * `mod.ts` is the entry point instead (`deno run -A mod.ts …`, `bun mod.ts …`).
 */

import process from "node:process";
import { main } from "./main.ts";

process.exit(await main(process.argv.slice(2)));
