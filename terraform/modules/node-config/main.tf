# The configuration of one `meridian server`: every flag as a MERIDIAN_*
# environment variable (for a systemd EnvironmentFile or a process's
# environment) and as a command line. Pure: no resources, so both the AWS
# region module and the local example use the same wiring.

locals {
  raft_host = var.raft_advertise_host != "" ? var.raft_advertise_host : var.advertise_host

  listen = {
    api       = "${var.listen_host}:${var.ports.api}"
    raft      = "${var.listen_host}:${var.ports.raft}"
    placement = "${var.listen_host}:${var.ports.placement}"
    gossip    = "${var.listen_host}:${var.ports.gossip}"
    wan       = "${var.listen_host}:${var.ports.gossip_wan}"
  }
  advertise = {
    api       = "${var.advertise_host}:${var.ports.api}"
    raft      = "${local.raft_host}:${var.ports.raft}"
    placement = "${var.advertise_host}:${var.ports.placement}"
    gossip    = "${local.raft_host}:${var.ports.gossip}"
    wan       = "${var.advertise_host}:${var.ports.gossip_wan}"
  }

  env = merge(
    {
      MERIDIAN_REGION               = var.region
      MERIDIAN_NODE_ID              = var.node_id
      MERIDIAN_DATA_DIR             = var.data_dir
      MERIDIAN_API_ADDR             = local.listen.api
      MERIDIAN_RAFT_ADDR            = local.listen.raft
      MERIDIAN_PLACEMENT_ADDR       = local.listen.placement
      MERIDIAN_GOSSIP_ADDR          = local.listen.gossip
      MERIDIAN_GOSSIP_WAN_ADDR      = local.listen.wan
      MERIDIAN_API_ADVERTISE        = local.advertise.api
      MERIDIAN_RAFT_ADVERTISE       = local.advertise.raft
      MERIDIAN_PLACEMENT_ADVERTISE  = local.advertise.placement
      MERIDIAN_GOSSIP_ADVERTISE     = local.advertise.gossip
      MERIDIAN_GOSSIP_WAN_ADVERTISE = local.advertise.wan
      MERIDIAN_DEAD_NODE_TIMEOUT    = var.dead_node_timeout
      MERIDIAN_STABILIZATION_TIME   = var.stabilization_time
    },
    var.bootstrap_region ? { MERIDIAN_BOOTSTRAP = "true" } : {},
    var.bootstrap_placement ? { MERIDIAN_PLACEMENT_BOOTSTRAP = "true" } : {},
    length(var.join) > 0 ? { MERIDIAN_JOIN = join(",", var.join) } : {},
    var.gossip_key_file != "" ? { MERIDIAN_GOSSIP_KEY_FILE = var.gossip_key_file } : {},
    var.tls != null ? { MERIDIAN_TLS_CERT = var.tls.cert, MERIDIAN_TLS_KEY = var.tls.key, MERIDIAN_TLS_CA = var.tls.ca } : {},
    var.auth_token_file != "" ? { MERIDIAN_AUTH_TOKEN_FILE = var.auth_token_file } : {},
  )
}

check "joins_or_bootstraps_placement" {
  assert {
    condition     = var.bootstrap_placement != (length(var.join) > 0)
    error_message = "a node either bootstraps the placement group (no join addresses) or joins through at least one address, not both."
  }
}
