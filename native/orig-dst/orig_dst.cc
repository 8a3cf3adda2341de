// getOriginalDst(fd, family) -> {address, port} | {error, errno}
// The destination a connection had before an iptables REDIRECT sent it to
// this process: getsockopt(SO_ORIGINAL_DST) (SOL_IP, 80) for IPv4 and
// IP6T_SO_ORIGINAL_DST (SOL_IPV6, 80) for IPv6. Needs no privileges.
#include <napi.h>
#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <netinet/in.h>
#include <sys/socket.h>

#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

static Napi::Value Fail(Napi::Env env, int err) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("error", Napi::String::New(env, strerror(err)));
  out.Set("errno", Napi::Number::New(env, err));
  return out;
}

static Napi::Value GetOriginalDst(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
    Napi::TypeError::New(env, "getOriginalDst(fd: number, family: 4 | 6)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  int family = info[1].As<Napi::Number>().Int32Value();
  char text[INET6_ADDRSTRLEN] = {0};
  Napi::Object out = Napi::Object::New(env);
  if (family == 6) {
    struct sockaddr_in6 sa;
    socklen_t len = sizeof(sa);
    std::memset(&sa, 0, sizeof(sa));
    if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &sa, &len) != 0) return Fail(env, errno);
    inet_ntop(AF_INET6, &sa.sin6_addr, text, sizeof(text));
    out.Set("address", Napi::String::New(env, text));
    out.Set("port", Napi::Number::New(env, ntohs(sa.sin6_port)));
    return out;
  }
  struct sockaddr_in sa;
  socklen_t len = sizeof(sa);
  std::memset(&sa, 0, sizeof(sa));
  if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &sa, &len) != 0) return Fail(env, errno);
  inet_ntop(AF_INET, &sa.sin_addr, text, sizeof(text));
  out.Set("address", Napi::String::New(env, text));
  out.Set("port", Napi::Number::New(env, ntohs(sa.sin_port)));
  return out;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("getOriginalDst", Napi::Function::New(env, GetOriginalDst));
  return exports;
}

NODE_API_MODULE(orig_dst, Init)
