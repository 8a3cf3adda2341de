// A proxy-wasm filter (Rust SDK) that exercises the host features an
// external-authorization or rate-counting filter needs, unchanged from what
// Envoy would load:
//   - requests to /auth/... pause while an HTTP call asks the `auth` cluster;
//     a 200 resumes the request with x-auth-user from the answer, anything
//     else is answered 401 from the filter
//   - every request bumps a counter in shared data (compare-and-swap) and
//     carries the new value in x-hits
//   - with bodies delivered (the filter's `bodies: true`): a request body
//     containing "forbidden" is answered 400, any other is upper-cased; the
//     response body is prefixed with "wrapped:"
//   - the root context ticks every 20 ms; each tick enqueues an item on a
//     shared queue, whose ready callback dequeues it and records the queue
//     delay into the `tick_delay_ms` histogram and the `ticks` gauge
// Built by scripts/build-test-wasm.ts.
use proxy_wasm::hostcalls;
use proxy_wasm::traits::*;
use proxy_wasm::types::*;
use std::time::Duration;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { queue: 0, ticks: 0, gauge: 0, histogram: 0 }) });
}}

struct Root {
    queue: u32,
    ticks: u64,
    gauge: u32,
    histogram: u32,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_vm_start(&mut self, _size: usize) -> bool {
        self.queue = self.register_shared_queue("ticks");
        self.gauge = hostcalls::define_metric(MetricType::Gauge, "ticks").unwrap_or(0);
        self.histogram = hostcalls::define_metric(MetricType::Histogram, "tick_delay_ms").unwrap_or(0);
        self.set_tick_period(Duration::from_millis(20));
        true
    }

    fn on_tick(&mut self) {
        let now = self.get_current_time();
        let ms = now.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let _ = self.enqueue_shared_queue(self.queue, Some(ms.to_string().as_bytes()));
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        while let Ok(Some(item)) = self.dequeue_shared_queue(queue_id) {
            let then: u64 = String::from_utf8_lossy(&item).parse().unwrap_or(0);
            let now = self.get_current_time().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
            self.ticks += 1;
            let _ = hostcalls::record_metric(self.gauge, self.ticks);
            let _ = hostcalls::record_metric(self.histogram, now.saturating_sub(then));
        }
    }

    fn create_http_context(&self, _id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Features))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Features;

impl Features {
    fn bump_hits(&self) -> u64 {
        for _ in 0..8 {
            let (value, cas) = self.get_shared_data("hits");
            let n: u64 = value.map(|v| String::from_utf8_lossy(&v).parse().unwrap_or(0)).unwrap_or(0) + 1;
            if self.set_shared_data("hits", Some(n.to_string().as_bytes()), cas).is_ok() {
                return n;
            }
        }
        0
    }
}

impl Context for Features {
    fn on_http_call_response(&mut self, _token: u32, _headers: usize, _body: usize, _trailers: usize) {
        match self.get_http_call_response_header(":status").as_deref() {
            Some("200") => {
                if let Some(user) = self.get_http_call_response_header("x-auth-user") {
                    self.add_http_request_header("x-auth-user", &user);
                }
                self.resume_http_request();
            }
            other => {
                let body = format!("auth said {}\n", other.unwrap_or("nothing"));
                self.send_http_response(401, vec![("x-plugin", "wasm-rust-features")], Some(body.as_bytes()));
            }
        }
    }
}

impl HttpContext for Features {
    fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        if let Some(body) = self.get_http_request_body(0, size) {
            if body.windows(9).any(|w| w == b"forbidden") {
                self.send_http_response(400, vec![], Some(b"forbidden body\n"));
                return Action::Pause;
            }
            self.set_http_request_body(0, size, &body.to_ascii_uppercase());
        }
        Action::Continue
    }

    fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self.get_http_response_body(0, size).unwrap_or_default();
        let mut out = b"wrapped:".to_vec();
        out.extend_from_slice(&body);
        self.set_http_response_body(0, size, &out);
        Action::Continue
    }

    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let hits = self.bump_hits();
        self.add_http_request_header("x-hits", &hits.to_string());
        let path = self.get_http_request_header(":path").unwrap_or_default();
        if !path.starts_with("/auth/") {
            return Action::Continue;
        }
        let token = self.get_http_request_header("x-token").unwrap_or_default();
        match self.dispatch_http_call("auth", vec![(":method", "GET"), (":path", "/check"), (":authority", "auth"), ("x-token", &token)], None, vec![], Duration::from_secs(2)) {
            Ok(_) => Action::Pause,
            Err(_) => {
                self.send_http_response(500, vec![], Some(b"http call failed\n"));
                Action::Pause
            }
        }
    }
}
