variable "region" {
  description = "Meridian region name (for example eu-west); the AWS region is the provider's."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,31}$", var.region))
    error_message = "region must start with a letter and hold at most 32 lower-case letters, digits and dashes."
  }
}

variable "node_count" {
  description = "Nodes in the region's Raft group: 1 (no fault tolerance), 3 or 5."
  type        = number
  default     = 3
  validation {
    condition     = contains([1, 3, 5], var.node_count)
    error_message = "node_count must be 1, 3 or 5: a Raft group of an even size tolerates no more failures than the odd size below it."
  }
}

variable "instance_type" {
  description = "EC2 instance type of the nodes (x86-64 or Graviton general-purpose, compute- or memory-optimised)."
  type        = string
  default     = "m7i.large"
  validation {
    condition     = can(regex("^(m|c|r)[5-8][a-z]*\\.(large|[0-9]*xlarge)$", var.instance_type))
    error_message = "instance_type must be an m, c or r family of generation 5-8 of size large or bigger (for example m7i.large): Raft's fsync and Badger's compactions starve on burstable or tiny instances."
  }
}

variable "ami_id" {
  description = "AMI of the nodes: a Linux with systemd and cloud-init (for example a recent Debian or Amazon Linux)."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR of the region's VPC; one /24 per availability zone is carved from it."
  type        = string
  default     = "10.40.0.0/16"
  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) <= 22
    error_message = "vpc_cidr must be an IPv4 CIDR of /22 or larger."
  }
}

variable "availability_zones" {
  description = "Availability zones to spread the nodes over (node i goes to zone i mod the count)."
  type        = list(string)
  validation {
    condition     = length(var.availability_zones) >= 1 && length(var.availability_zones) <= 3
    error_message = "give 1 to 3 availability zones (3 lets a region of 3 or 5 survive the loss of a zone)."
  }
}

variable "client_cidrs" {
  description = "CIDRs allowed to call the API port (applications, operators)."
  type        = list(string)
  default     = []
}

variable "peer_cidrs" {
  description = "CIDRs of the other regions' nodes (their public addresses as /32): they reach this region's API (replication, forwarding), placement and WAN gossip ports."
  type        = list(string)
  default     = []
}

variable "bootstrap_placement" {
  description = "This region's first node forms the deployment's placement group (exactly one region of a deployment)."
  type        = bool
  default     = false
}

variable "join_address" {
  description = "API address (host:port) of a node of another region to join through; empty only in the region that bootstraps the placement group."
  type        = string
  default     = ""
}

variable "meridian_binary_url" {
  description = "HTTPS URL the nodes download the meridian binary from."
  type        = string
  validation {
    condition     = startswith(var.meridian_binary_url, "https://")
    error_message = "meridian_binary_url must be an https:// URL."
  }
}

variable "meridian_binary_sha256" {
  description = "SHA-256 of the binary; the node refuses a download that does not match."
  type        = string
  validation {
    condition     = can(regex("^[0-9a-f]{64}$", var.meridian_binary_sha256))
    error_message = "meridian_binary_sha256 must be 64 lower-case hex digits."
  }
}

variable "gossip_key" {
  description = "Base64 gossip encryption key (32 random bytes: head -c 32 /dev/urandom | base64), the same in every region."
  type        = string
  sensitive   = true
  validation {
    condition     = can(base64decode(var.gossip_key)) && length(base64decode(var.gossip_key)) == 32
    error_message = "gossip_key must be 32 bytes, base64-encoded."
  }
}

variable "data_volume_gib" {
  description = "Size of each node's data volume (gp3), in GiB."
  type        = number
  default     = 100
  validation {
    condition     = var.data_volume_gib >= 20 && var.data_volume_gib <= 16384
    error_message = "data_volume_gib must be between 20 and 16384."
  }
}

variable "dead_node_timeout" {
  description = "How long gossip must report a node failed before its region removes it (Go duration)."
  type        = string
  default     = "5m"
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "tls_parameter_prefix" {
  description = "SSM Parameter Store path (SecureString parameters) of the deployment's TLS material, fetched by each node at boot and every 10 minutes: <prefix>/ca.pem, <prefix>/<region>/<node>/cert.pem and .../key.pem ('meridian tls cert' makes them; certificates should list the node's Elastic IP). Empty: every port plaintext."
  type        = string
  default     = ""
  validation {
    condition     = var.tls_parameter_prefix == "" || can(regex("^(/[A-Za-z0-9_.-]+)+$", var.tls_parameter_prefix))
    error_message = "tls_parameter_prefix must be empty or an SSM path such as /meridian/prod (no trailing slash)."
  }
}

variable "auth_tokens" {
  description = "Require bearer tokens: nodes load <tls_parameter_prefix>/tokens ('meridian token new' prints its lines). Needs tls_parameter_prefix."
  type        = bool
  default     = false
  validation {
    condition     = !var.auth_tokens || var.tls_parameter_prefix != ""
    error_message = "auth_tokens needs tls_parameter_prefix: bearer tokens must not cross the network in plaintext."
  }
}
