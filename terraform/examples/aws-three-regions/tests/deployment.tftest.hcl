# The three-region example against mocked AWS providers: no credentials,
# no network. Each region's Elastic IPs get a fixed mock address so that
# the join wiring can be checked.

mock_provider "aws" {
  alias = "r0"
  mock_resource "aws_eip" {
    defaults = { public_ip = "198.51.100.10", id = "eipalloc-r0" }
  }
}

mock_provider "aws" {
  alias = "r1"
  mock_resource "aws_eip" {
    defaults = { public_ip = "198.51.100.20", id = "eipalloc-r1" }
  }
}

mock_provider "aws" {
  alias = "r2"
  mock_resource "aws_eip" {
    defaults = { public_ip = "198.51.100.30", id = "eipalloc-r2" }
  }
}

variables {
  meridian_binary_url    = "https://downloads.example.com/meridian/linux-amd64/meridian"
  meridian_binary_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
  gossip_key             = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
  client_cidrs           = ["192.0.2.0/24"]
}

run "three_regions_of_three" {
  command = apply

  assert {
    condition     = module.r0.instance_count == 3 && module.r1.instance_count == 3 && module.r2.instance_count == 3
    error_message = "every region must run 3 nodes"
  }
  assert {
    condition     = length(output.api_endpoints) == 3 && alltrue([for r, eps in output.api_endpoints : length(eps) == 3])
    error_message = "the outputs must list 3 endpoints for each of the 3 regions"
  }
  assert {
    condition     = output.seed_address == "198.51.100.10:7001"
    error_message = "the deployment's seed is the first region's first node"
  }

  # Join wiring: the first node of the first region bootstraps both groups
  # and joins nobody; its other nodes join it; the other regions' first
  # nodes bootstrap their region and join the first region.
  assert {
    condition     = strcontains(nonsensitive(module.r0.user_data[0]), "MERIDIAN_PLACEMENT_BOOTSTRAP=true") && !strcontains(nonsensitive(module.r0.user_data[0]), "MERIDIAN_JOIN")
    error_message = "the first node must bootstrap the placement group and join nobody"
  }
  assert {
    condition     = strcontains(nonsensitive(module.r0.user_data[1]), "MERIDIAN_JOIN=198.51.100.10:7001") && !strcontains(nonsensitive(module.r0.user_data[1]), "BOOTSTRAP")
    error_message = "the first region's other nodes must join its first node"
  }
  assert {
    condition     = alltrue([for ud in concat(module.r1.user_data, module.r2.user_data) : strcontains(nonsensitive(ud), "MERIDIAN_JOIN=198.51.100.")])
    error_message = "every node of the other regions must name a join address"
  }
  assert {
    condition     = strcontains(nonsensitive(module.r1.user_data[0]), "MERIDIAN_JOIN=198.51.100.10:7001") && strcontains(nonsensitive(module.r1.user_data[0]), "MERIDIAN_BOOTSTRAP=true") && !strcontains(nonsensitive(module.r1.user_data[0]), "PLACEMENT_BOOTSTRAP")
    error_message = "the second region's first node must bootstrap its region and join the first region"
  }
  assert {
    condition     = strcontains(nonsensitive(module.r2.user_data[2]), "MERIDIAN_JOIN=198.51.100.30:7001")
    error_message = "the third region's other nodes must join their region's first node"
  }
  assert {
    condition     = strcontains(nonsensitive(module.r1.user_data[0]), "MERIDIAN_API_ADVERTISE=198.51.100.20:7001") && strcontains(nonsensitive(module.r1.user_data[0]), "MERIDIAN_RAFT_ADVERTISE=10.41.0.10:7101")
    error_message = "API is advertised on the Elastic IP, Raft on the fixed private address"
  }

  # Security groups: only Meridian's ports; Raft only inside the VPC; the
  # other regions' nodes on API, placement and gossip; clients on the API.
  assert {
    condition     = alltrue([for r in concat(module.r0.ingress_rules, module.r1.ingress_rules, module.r2.ingress_rules) : contains(["7001", "7101", "7201", "7301", "7302"], split("/", r)[1])])
    error_message = "no port other than 7001, 7101, 7201, 7301 and 7302 may be open"
  }
  assert {
    condition     = length([for r in module.r1.ingress_rules : r if startswith(r, "tcp/7101/")]) == 1 && contains(module.r1.ingress_rules, "tcp/7101/10.41.0.0/16")
    error_message = "Raft must be open to the region's own VPC only"
  }
  assert {
    condition     = length([for r in module.r1.ingress_rules : r if can(regex("^(tcp|udp)/7301/", r))]) == 2 && contains(module.r1.ingress_rules, "udp/7301/10.41.0.0/16")
    error_message = "the region's LAN gossip pool must be open to its own VPC only (TCP and UDP)"
  }
  assert {
    condition     = contains(module.r1.ingress_rules, "tcp/7201/198.51.100.10/32") && contains(module.r1.ingress_rules, "udp/7302/198.51.100.30/32") && contains(module.r1.ingress_rules, "tcp/7001/198.51.100.30/32")
    error_message = "the other regions' nodes must reach placement, WAN gossip (UDP too) and the API"
  }
  assert {
    condition     = contains(module.r0.ingress_rules, "tcp/7001/192.0.2.0/24") && !contains(module.r0.ingress_rules, "tcp/7201/192.0.2.0/24")
    error_message = "clients reach the API and nothing else"
  }
  assert {
    condition     = module.r2.instance_zones == ["ap-south-1a", "ap-south-1b", "ap-south-1c"]
    error_message = "the nodes must be spread over the three zones"
  }
}

run "five_nodes_per_region" {
  command = apply
  variables {
    nodes_per_region = 5
  }
  assert {
    condition     = module.r0.instance_count == 5 && module.r2.instance_count == 5
    error_message = "every region must run 5 nodes"
  }
}

run "rejects_four_nodes" {
  command = plan
  variables {
    nodes_per_region = 4
  }
  expect_failures = [var.nodes_per_region]
}

run "tls_from_parameter_store" {
  command = apply
  variables {
    tls_parameter_prefix = "/meridian/prod"
    auth_tokens          = true
  }
  assert {
    condition     = alltrue([for r in [module.r0, module.r1, module.r2] : alltrue([for ep in r.api_endpoints : startswith(ep, "https://")])])
    error_message = "with TLS every endpoint is https"
  }
  assert {
    condition     = strcontains(nonsensitive(module.r1.user_data[2]), "MERIDIAN_TLS_CERT=/etc/meridian/tls/node.pem") && strcontains(nonsensitive(module.r1.user_data[2]), "MERIDIAN_AUTH_TOKEN_FILE=/etc/meridian/tokens")
    error_message = "each node runs with its TLS files and the token file"
  }
  assert {
    condition     = strcontains(nonsensitive(module.r1.user_data[2]), "/meridian/prod/us-east/n3/key.pem") && strcontains(nonsensitive(module.r1.user_data[2]), "/meridian/prod/ca.pem") && strcontains(nonsensitive(module.r1.user_data[2]), "/meridian/prod/tokens")
    error_message = "each node fetches its own key, the CA and the tokens from Parameter Store"
  }
  assert {
    condition     = !strcontains(nonsensitive(module.r1.user_data[2]), "BEGIN") && !strcontains(nonsensitive(module.r1.user_data[2]), "/meridian/prod/us-east/n2/")
    error_message = "no key material in the user data, and no other node's parameters"
  }
}

run "plaintext_has_no_tls_fetch" {
  command = apply
  assert {
    condition     = !strcontains(nonsensitive(module.r0.user_data[0]), "meridian-fetch-tls") && !strcontains(nonsensitive(module.r0.user_data[0]), "MERIDIAN_TLS_CERT")
    error_message = "without tls_parameter_prefix nothing fetches TLS material"
  }
}
