// A proxy-wasm filter written with the Rust SDK (the proxy-wasm crate),
// unchanged from what Envoy would load: marks requests and responses with
// `x-plugin: wasm-rust`, and answers 403 itself to a caller whose `x-user`
// equals the plugin configuration, counting it in the `blocked_total`
// counter. Built by scripts/build-test-wasm.ts.
use proxy_wasm::hostcalls;
use proxy_wasm::traits::*;
use proxy_wasm::types::*;
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(GuardRoot { blocked: Rc::new(String::new()), counter: 0 }) });
}}

struct GuardRoot {
    blocked: Rc<String>,
    counter: u32,
}

impl Context for GuardRoot {}

impl RootContext for GuardRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        if let Some(c) = self.get_plugin_configuration() {
            self.blocked = Rc::new(String::from_utf8_lossy(&c).into_owned());
        }
        self.counter = hostcalls::define_metric(MetricType::Counter, "blocked_total").unwrap_or(0);
        true
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Guard { blocked: self.blocked.clone(), counter: self.counter }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Guard {
    blocked: Rc<String>,
    counter: u32,
}

impl Context for Guard {}

impl HttpContext for Guard {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        match self.get_http_request_header("x-user") {
            Some(user) if !self.blocked.is_empty() && user == *self.blocked => {
                let _ = hostcalls::increment_metric(self.counter, 1);
                log::info!("blocked {}", user);
                self.send_http_response(403, vec![], Some(b"blocked by wasm-rust\n"));
                Action::Pause
            }
            _ => {
                self.add_http_request_header("x-plugin", "wasm-rust");
                Action::Continue
            }
        }
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        self.add_http_response_header("x-plugin", "wasm-rust");
        Action::Continue
    }
}
