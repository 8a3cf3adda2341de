// A proxy-wasm filter written with the AssemblyScript SDK
// (@solo-io/proxy-runtime), unchanged from what Envoy would load: marks
// requests and responses with `x-plugin: wasm-as`, and answers 403 itself
// to a caller whose `x-user` equals the plugin configuration, counting it in
// the `blocked_total` counter. Built by scripts/build-test-wasm.ts.
export * from "@solo-io/proxy-runtime/proxy";
import { RootContext, Context, registerRootContext, FilterHeadersStatusValues, stream_context, send_local_response, GrpcStatusValues, Counter, log, LogLevelValues } from "@solo-io/proxy-runtime";

let blocked: Counter | null = null;

class GuardRoot extends RootContext {
  createContext(context_id: u32): Context {
    return new Guard(context_id, this);
  }
}

class Guard extends Context {
  constructor(context_id: u32, root_context: GuardRoot) {
    super(context_id, root_context);
  }
  onRequestHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    const user = stream_context.headers.request.get("x-user");
    if (user != "" && user == this.root_context.getConfiguration()) {
      if (blocked == null) blocked = new Counter("blocked_total");
      (blocked as Counter).increment(1);
      log(LogLevelValues.info, "blocked " + user);
      send_local_response(403, "blocked", String.UTF8.encode("blocked by wasm-as\n"), [], GrpcStatusValues.PermissionDenied);
      return FilterHeadersStatusValues.StopIteration;
    }
    stream_context.headers.request.add("x-plugin", "wasm-as");
    return FilterHeadersStatusValues.Continue;
  }
  onResponseHeaders(a: u32, end_of_stream: bool): FilterHeadersStatusValues {
    stream_context.headers.response.add("x-plugin", "wasm-as");
    return FilterHeadersStatusValues.Continue;
  }
}

registerRootContext((context_id: u32) => { return new GuardRoot(context_id); }, "guard");
