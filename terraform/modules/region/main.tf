# One Meridian region on AWS: a VPC with a public subnet per availability
# zone, one security group that opens only Meridian's ports, and
# node_count instances spread over the zones, each with a fixed private
# address, an Elastic IP (its address towards clients and other regions)
# and a data volume. cloud-init installs the binary, the gossip key and
# the systemd unit; node 0 forms the region, the others join it. With
# tls_parameter_prefix, each node fetches its certificate, key, the CA
# bundle (and the token file) from SSM Parameter Store at boot and every
# 10 minutes (the node reloads changed files by itself), so that no
# private key is in the user data.

locals {
  ports = { api = 7001, raft = 7101, placement = 7201, gossip = 7301, gossip_wan = 7302 }
  name  = "meridian-${var.region}"
  tags  = merge(var.tags, { "meridian:region" = var.region })

  subnet_cidrs = [for i, _ in var.availability_zones : cidrsubnet(var.vpc_cidr, 24 - tonumber(split("/", var.vpc_cidr)[1]), i)]
  # Node i: zone i mod zones, the 10th + i/zones address of its subnet.
  private_ips = [for i in range(var.node_count) :
    cidrhost(local.subnet_cidrs[i % length(var.availability_zones)], 10 + floor(i / length(var.availability_zones)))
  ]
  data_dir        = "/var/lib/meridian"
  gossip_key_file = "/etc/meridian/gossip.keys"
  tls_on          = var.tls_parameter_prefix != ""
  tls_dir         = "/etc/meridian/tls"
  tls_files       = { cert = "${local.tls_dir}/node.pem", key = "${local.tls_dir}/node-key.pem", ca = "${local.tls_dir}/ca.pem" }
  token_file      = "/etc/meridian/tokens"
  # Nodes other than 0 join through node 0 of this region; node 0 joins
  # through another region unless it bootstraps the placement group.
  seed = "${aws_eip.node[0].public_ip}:${local.ports.api}"
}

resource "aws_vpc" "this" {
  cidr_block           = var.vpc_cidr
  enable_dns_hostnames = true
  tags                 = merge(local.tags, { Name = local.name })
}

resource "aws_internet_gateway" "this" {
  vpc_id = aws_vpc.this.id
  tags   = merge(local.tags, { Name = local.name })
}

resource "aws_subnet" "zone" {
  count             = length(var.availability_zones)
  vpc_id            = aws_vpc.this.id
  cidr_block        = local.subnet_cidrs[count.index]
  availability_zone = var.availability_zones[count.index]
  tags              = merge(local.tags, { Name = "${local.name}-${var.availability_zones[count.index]}" })
}

resource "aws_route_table" "public" {
  vpc_id = aws_vpc.this.id
  route {
    cidr_block = "0.0.0.0/0"
    gateway_id = aws_internet_gateway.this.id
  }
  tags = merge(local.tags, { Name = local.name })
}

resource "aws_route_table_association" "zone" {
  count          = length(var.availability_zones)
  subnet_id      = aws_subnet.zone[count.index].id
  route_table_id = aws_route_table.public.id
}

resource "aws_security_group" "node" {
  name        = "${local.name}-node"
  description = "Meridian nodes of region ${var.region}: API, Raft, placement and gossip only"
  vpc_id      = aws_vpc.this.id
  tags        = merge(local.tags, { Name = "${local.name}-node" })
}

locals {
  # Who reaches which port: Raft and the region's LAN gossip pool stay
  # inside the region's VPC; API, placement and the WAN gossip pool are
  # open to the region's own nodes and to the other regions' nodes; the
  # API also to clients. Nothing else (no SSH:
  # use SSM Session Manager).
  # Keys are static (peer addresses are known only after apply).
  ingress = merge(
    { for p in ["api", "raft", "placement", "gossip", "gossip_wan"] : "${p}-vpc" => { port = local.ports[p], protocol = "tcp", cidr = var.vpc_cidr } },
    { for p in ["gossip", "gossip_wan"] : "${p}-udp-vpc" => { port = local.ports[p], protocol = "udp", cidr = var.vpc_cidr } },
    merge([for i, c in var.peer_cidrs : {
      "api-peer-${i}"            = { port = local.ports.api, protocol = "tcp", cidr = c }
      "placement-peer-${i}"      = { port = local.ports.placement, protocol = "tcp", cidr = c }
      "gossip_wan-peer-${i}"     = { port = local.ports.gossip_wan, protocol = "tcp", cidr = c }
      "gossip_wan-udp-peer-${i}" = { port = local.ports.gossip_wan, protocol = "udp", cidr = c }
    }]...),
    { for i, c in var.client_cidrs : "api-client-${i}" => { port = local.ports.api, protocol = "tcp", cidr = c } },
  )
}

resource "aws_vpc_security_group_ingress_rule" "node" {
  for_each          = local.ingress
  security_group_id = aws_security_group.node.id
  description       = each.key
  ip_protocol       = each.value.protocol
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = each.value.cidr
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "all" {
  security_group_id = aws_security_group.node.id
  description       = "nodes reach other regions, the package mirror and the binary URL"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
  tags              = local.tags
}

# Elastic IPs first, so that every node's user data can name its own public
# address and node 0's (the region's seed) before the instances exist.
resource "aws_eip" "node" {
  count  = var.node_count
  domain = "vpc"
  tags   = merge(local.tags, { Name = "${local.name}-n${count.index + 1}" })
}

module "node_config" {
  source = "../node-config"
  count  = var.node_count

  region              = var.region
  node_id             = "n${count.index + 1}"
  data_dir            = local.data_dir
  advertise_host      = aws_eip.node[count.index].public_ip
  raft_advertise_host = local.private_ips[count.index]
  ports               = local.ports
  bootstrap_region    = count.index == 0
  bootstrap_placement = count.index == 0 && var.bootstrap_placement
  join                = count.index == 0 ? compact([var.join_address]) : [local.seed]
  gossip_key_file     = local.gossip_key_file
  dead_node_timeout   = var.dead_node_timeout
  tls                 = local.tls_on ? local.tls_files : null
  auth_token_file     = var.auth_tokens ? local.token_file : ""
}

# The nodes' role: SSM Session Manager (there is no SSH) and, with TLS,
# reading the deployment's parameters under tls_parameter_prefix only.
data "aws_region" "current" {}

resource "aws_iam_role" "node" {
  name = "${local.name}-node"
  assume_role_policy = jsonencode({
    Version   = "2012-10-17"
    Statement = [{ Effect = "Allow", Action = "sts:AssumeRole", Principal = { Service = "ec2.amazonaws.com" } }]
  })
  tags = local.tags
}

resource "aws_iam_role_policy_attachment" "ssm_core" {
  role       = aws_iam_role.node.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
}

resource "aws_iam_role_policy" "tls_parameters" {
  count = local.tls_on ? 1 : 0
  name  = "${local.name}-tls-parameters"
  role  = aws_iam_role.node.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = ["ssm:GetParameter"]
      Resource = "arn:aws:ssm:${data.aws_region.current.name}:*:parameter${var.tls_parameter_prefix}/*"
    }]
  })
}

resource "aws_iam_instance_profile" "node" {
  name = "${local.name}-node"
  role = aws_iam_role.node.name
  tags = local.tags
}

resource "aws_instance" "node" {
  count                  = var.node_count
  ami                    = var.ami_id
  instance_type          = var.instance_type
  subnet_id              = aws_subnet.zone[count.index % length(var.availability_zones)].id
  private_ip             = local.private_ips[count.index]
  vpc_security_group_ids = [aws_security_group.node.id]
  iam_instance_profile   = aws_iam_instance_profile.node.name

  user_data_replace_on_change = false
  user_data = templatefile("${path.module}/templates/cloud-init.yaml.tftpl", {
    env_file        = module.node_config[count.index].env_file
    unit            = file("${path.module}/files/meridian.service")
    gossip_key      = var.gossip_key
    gossip_key_file = local.gossip_key_file
    data_dir        = local.data_dir
    binary_url      = var.meridian_binary_url
    binary_sha256   = var.meridian_binary_sha256
    tls_fetch = local.tls_on ? templatefile("${path.module}/templates/fetch-tls.sh.tftpl", {
      aws_region = data.aws_region.current.name
      parameters = merge(
        {
          (local.tls_files.ca)   = "${var.tls_parameter_prefix}/ca.pem"
          (local.tls_files.cert) = "${var.tls_parameter_prefix}/${var.region}/n${count.index + 1}/cert.pem"
          (local.tls_files.key)  = "${var.tls_parameter_prefix}/${var.region}/n${count.index + 1}/key.pem"
        },
        var.auth_tokens ? { (local.token_file) = "${var.tls_parameter_prefix}/tokens" } : {},
      )
    }) : ""
  })

  metadata_options {
    http_tokens = "required"
  }

  root_block_device {
    volume_type = "gp3"
    volume_size = 20
    encrypted   = true
  }

  ebs_block_device {
    device_name = "/dev/sdf"
    volume_type = "gp3"
    volume_size = var.data_volume_gib
    encrypted   = true
  }

  tags = merge(local.tags, { Name = "${local.name}-n${count.index + 1}", "meridian:node" = "n${count.index + 1}" })

  lifecycle {
    precondition {
      condition     = var.bootstrap_placement != (var.join_address != "")
      error_message = "a region either bootstraps the placement group (bootstrap_placement, no join_address) or joins another region through join_address."
    }
  }
}

resource "aws_eip_association" "node" {
  count         = var.node_count
  instance_id   = aws_instance.node[count.index].id
  allocation_id = aws_eip.node[count.index].id
}
