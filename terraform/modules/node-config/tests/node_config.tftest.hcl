# Plan-only tests of the flags a node gets: no provider, no resources.

variables {
  region         = "eu-west"
  node_id        = "n2"
  data_dir       = "/var/lib/meridian"
  advertise_host = "203.0.113.10"
  join           = ["203.0.113.1:7001"]
}

run "joining_node" {
  command = plan

  assert {
    condition     = output.env["MERIDIAN_JOIN"] == "203.0.113.1:7001"
    error_message = "a joining node must name its join address"
  }
  assert {
    condition     = !contains(keys(output.env), "MERIDIAN_BOOTSTRAP") && !contains(keys(output.env), "MERIDIAN_PLACEMENT_BOOTSTRAP")
    error_message = "a joining node must not bootstrap"
  }
  assert {
    condition     = output.env["MERIDIAN_GOSSIP_WAN_ADVERTISE"] == "203.0.113.10:7302" && output.env["MERIDIAN_GOSSIP_ADVERTISE"] == "203.0.113.10:7301" && output.env["MERIDIAN_RAFT_ADVERTISE"] == "203.0.113.10:7101"
    error_message = "advertised addresses must use advertise_host and the default ports"
  }
  assert {
    condition     = contains(output.args, "--join=203.0.113.1:7001") && output.args[0] == "server"
    error_message = "the command line must carry the join address"
  }
  assert {
    condition     = output.api_address == "203.0.113.10:7001"
    error_message = "api_address must be the advertised API address"
  }
}

run "first_node_of_the_deployment" {
  command = plan

  variables {
    join                = []
    bootstrap_region    = true
    bootstrap_placement = true
    raft_advertise_host = "10.0.1.10"
    gossip_key_file     = "/etc/meridian/gossip.keys"
  }

  assert {
    condition     = output.env["MERIDIAN_BOOTSTRAP"] == "true" && output.env["MERIDIAN_PLACEMENT_BOOTSTRAP"] == "true"
    error_message = "the first node bootstraps its region and the placement group"
  }
  assert {
    condition     = output.env["MERIDIAN_RAFT_ADVERTISE"] == "10.0.1.10:7101" && output.env["MERIDIAN_GOSSIP_ADVERTISE"] == "10.0.1.10:7301" && output.env["MERIDIAN_GOSSIP_WAN_ADVERTISE"] == "203.0.113.10:7302"
    error_message = "Raft and LAN gossip are advertised on the private address, WAN gossip on the public one"
  }
  assert {
    condition     = contains(output.args, "--bootstrap=true") && contains(output.args, "--gossip-key-file=/etc/meridian/gossip.keys")
    error_message = "boolean flags are passed as --flag=true"
  }
}

run "rejects_bad_region_name" {
  command = plan
  variables {
    region = "EU West"
  }
  expect_failures = [var.region]
}

run "rejects_clashing_ports" {
  command = plan
  variables {
    ports = { api = 7001, raft = 7001, placement = 7201, gossip = 7301, gossip_wan = 7302 }
  }
  expect_failures = [var.ports]
}

run "flags_both_bootstrap_and_join" {
  command = plan
  variables {
    bootstrap_placement = true
  }
  expect_failures = [check.joins_or_bootstraps_placement]
}

run "tls_and_tokens" {
  command = plan
  variables {
    tls             = { cert = "/etc/meridian/tls/node.pem", key = "/etc/meridian/tls/node-key.pem", ca = "/etc/meridian/tls/ca.pem" }
    auth_token_file = "/etc/meridian/tokens"
  }
  assert {
    condition     = output.env["MERIDIAN_TLS_CERT"] == "/etc/meridian/tls/node.pem" && output.env["MERIDIAN_TLS_CA"] == "/etc/meridian/tls/ca.pem" && output.env["MERIDIAN_AUTH_TOKEN_FILE"] == "/etc/meridian/tokens"
    error_message = "TLS files and the token file reach the node's environment"
  }
  assert {
    condition     = contains(output.args, "--tls-key=/etc/meridian/tls/node-key.pem") && contains(output.args, "--auth-token-file=/etc/meridian/tokens")
    error_message = "and its command line"
  }
}

run "rejects_tokens_without_tls" {
  command = plan
  variables {
    auth_token_file = "/etc/meridian/tokens"
  }
  expect_failures = [var.auth_token_file]
}
