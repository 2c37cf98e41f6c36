// SO_ORIGINAL_DST for Node: the address a connection was sent to before iptables/nftables
// REDIRECT changed it (what Envoy's original_dst listener filter reads). Node's net module has
// no getsockopt.
#include "addon.h"
#include <arpa/inet.h>
#include <linux/netfilter_ipv4.h>
#include <netinet/in.h>
#include <sys/socket.h>

#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

static napi_value make_endpoint(napi_env env, const char *address, int port) {
  napi_value result, address_value, port_value;
  napi_create_object(env, &result);
  napi_create_string_utf8(env, address, NAPI_AUTO_LENGTH, &address_value);
  napi_create_int32(env, port, &port_value);
  napi_set_named_property(env, result, "address", address_value);
  napi_set_named_property(env, result, "port", port_value);
  return result;
}

// originalDestination(fd) -> { address, port } | null
napi_value original_destination(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1], null_value;
  int32_t fd = -1;
  napi_get_null(env, &null_value);
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "originalDestination(fd) needs a file descriptor");
    return NULL;
  }
  char text[INET6_ADDRSTRLEN];
  struct sockaddr_in v4;
  socklen_t length = sizeof(v4);
  if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &v4, &length) == 0 && v4.sin_family == AF_INET) {
    inet_ntop(AF_INET, &v4.sin_addr, text, sizeof(text));
    return make_endpoint(env, text, ntohs(v4.sin_port));
  }
  struct sockaddr_in6 v6;
  length = sizeof(v6);
  if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &v6, &length) == 0 && v6.sin6_family == AF_INET6) {
    inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof(text));
    return make_endpoint(env, text, ntohs(v6.sin6_port));
  }
  return null_value;
}
