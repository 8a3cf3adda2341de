// An empty proxy-wasm filter (AssemblyScript SDK): every callback continues.
// `npm run bench` measures the per-request cost of the proxy-wasm host with it.
export * from "@solo-io/proxy-runtime/proxy";
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues } from "@solo-io/proxy-runtime";

class EmptyRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new Empty(context_id, this);
  }
}

class Empty extends Context {
  constructor(context_id: u32, root_context: EmptyRoot) {
    super(context_id, root_context);
  }
  onRequestHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => { return new EmptyRoot(context_id); }, "empty");
