# Three Meridian regions in three AWS regions. The first region bootstraps
# the placement group; the other two join through its first node. Each
# region admits the others' nodes (their Elastic IPs) on the API, placement
# and gossip ports.

provider "aws" {
  alias  = "r0"
  region = var.regions[0].aws
}

provider "aws" {
  alias  = "r1"
  region = var.regions[1].aws
}

provider "aws" {
  alias  = "r2"
  region = var.regions[2].aws
}

locals {
  common = {
    node_count             = var.nodes_per_region
    instance_type          = var.instance_type
    client_cidrs           = var.client_cidrs
    meridian_binary_url    = var.meridian_binary_url
    meridian_binary_sha256 = var.meridian_binary_sha256
    tls_parameter_prefix   = var.tls_parameter_prefix
    auth_tokens            = var.auth_tokens
  }
}

module "r0" {
  source    = "../../modules/region"
  providers = { aws = aws.r0 }

  region                 = var.regions[0].name
  availability_zones     = var.regions[0].zones
  vpc_cidr               = var.regions[0].vpc_cidr
  ami_id                 = var.regions[0].ami_id
  bootstrap_placement    = true
  peer_cidrs             = concat(module.r1.node_cidrs, module.r2.node_cidrs)
  node_count             = local.common.node_count
  instance_type          = local.common.instance_type
  client_cidrs           = local.common.client_cidrs
  meridian_binary_url    = local.common.meridian_binary_url
  meridian_binary_sha256 = local.common.meridian_binary_sha256
  gossip_key             = var.gossip_key
  tls_parameter_prefix   = local.common.tls_parameter_prefix
  auth_tokens            = local.common.auth_tokens
}

module "r1" {
  source    = "../../modules/region"
  providers = { aws = aws.r1 }

  region                 = var.regions[1].name
  availability_zones     = var.regions[1].zones
  vpc_cidr               = var.regions[1].vpc_cidr
  ami_id                 = var.regions[1].ami_id
  join_address           = module.r0.seed_address
  peer_cidrs             = concat(module.r0.node_cidrs, module.r2.node_cidrs)
  node_count             = local.common.node_count
  instance_type          = local.common.instance_type
  client_cidrs           = local.common.client_cidrs
  meridian_binary_url    = local.common.meridian_binary_url
  meridian_binary_sha256 = local.common.meridian_binary_sha256
  gossip_key             = var.gossip_key
  tls_parameter_prefix   = local.common.tls_parameter_prefix
  auth_tokens            = local.common.auth_tokens
}

module "r2" {
  source    = "../../modules/region"
  providers = { aws = aws.r2 }

  region                 = var.regions[2].name
  availability_zones     = var.regions[2].zones
  vpc_cidr               = var.regions[2].vpc_cidr
  ami_id                 = var.regions[2].ami_id
  join_address           = module.r0.seed_address
  peer_cidrs             = concat(module.r0.node_cidrs, module.r1.node_cidrs)
  node_count             = local.common.node_count
  instance_type          = local.common.instance_type
  client_cidrs           = local.common.client_cidrs
  meridian_binary_url    = local.common.meridian_binary_url
  meridian_binary_sha256 = local.common.meridian_binary_sha256
  gossip_key             = var.gossip_key
  tls_parameter_prefix   = local.common.tls_parameter_prefix
  auth_tokens            = local.common.auth_tokens
}
