variable "region" {
  description = "Meridian region name of the node (not the cloud region): lower-case letters, digits and dashes."
  type        = string
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,31}$", var.region))
    error_message = "region must start with a letter and hold at most 32 lower-case letters, digits and dashes."
  }
}

variable "node_id" {
  description = "Node id, unique in its region."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,31}$", var.node_id))
    error_message = "node_id must hold at most 32 lower-case letters, digits and dashes."
  }
}

variable "data_dir" {
  description = "Data directory of the node."
  type        = string
}

variable "listen_host" {
  description = "Host the node's listeners bind to."
  type        = string
  default     = "0.0.0.0"
}

variable "advertise_host" {
  description = "Address other regions and clients use to reach the node (API, placement, gossip)."
  type        = string
}

variable "raft_advertise_host" {
  description = "Address the region's own members use for Raft and LAN gossip; empty means advertise_host."
  type        = string
  default     = ""
}

variable "ports" {
  description = "Ports of the node's listeners: API, Raft, placement, the region's LAN gossip pool and the deployment's WAN gossip pool."
  type = object({
    api        = number
    raft       = number
    placement  = number
    gossip     = number
    gossip_wan = number
  })
  default = { api = 7001, raft = 7101, placement = 7201, gossip = 7301, gossip_wan = 7302 }
  validation {
    condition     = length(distinct(values(var.ports))) == 5 && alltrue([for p in values(var.ports) : p > 0 && p < 65536])
    error_message = "ports must be five distinct ports in 1-65535."
  }
}

variable "bootstrap_region" {
  description = "This node forms its region (the region's first node); the others join it through gossip."
  type        = bool
  default     = false
}

variable "bootstrap_placement" {
  description = "This node forms the deployment's placement group (exactly one node of the whole deployment)."
  type        = bool
  default     = false
}

variable "join" {
  description = "API addresses (host:port) of nodes already in the deployment to join through; empty only for the node that bootstraps the placement group."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for a in var.join : can(regex("^[^:]+:[0-9]+$", a))])
    error_message = "every join address must be host:port."
  }
}

variable "gossip_key_file" {
  description = "Path of the gossip key file on the node; empty: gossip unencrypted."
  type        = string
  default     = ""
}

variable "tls" {
  description = "Paths on the node of its PEM certificate, key and the deployment's CA bundle (docs/SECURITY.md; 'meridian tls cert' makes them); null: plaintext."
  type = object({
    cert = string
    key  = string
    ca   = string
  })
  default = null
  validation {
    condition     = var.tls == null ? true : (var.tls.cert != "" && var.tls.key != "" && var.tls.ca != "")
    error_message = "tls needs all of cert, key and ca."
  }
}

variable "auth_token_file" {
  description = "Path on the node of its bearer token file ('meridian token new' prints lines for it); needs tls. Empty: the API takes calls from anyone who reaches it."
  type        = string
  default     = ""
  validation {
    condition     = var.auth_token_file == "" || var.tls != null
    error_message = "auth_token_file needs tls: bearer tokens must not cross the network in plaintext."
  }
}

variable "dead_node_timeout" {
  description = "How long gossip must report a node failed before its region removes it from the Raft group (Go duration)."
  type        = string
  default     = "1m"
  validation {
    condition     = can(regex("^[0-9]+(ms|s|m|h)$", var.dead_node_timeout))
    error_message = "dead_node_timeout must be a Go duration such as 90s or 2m."
  }
}

variable "stabilization_time" {
  description = "How long a joining node must stay healthy before it becomes a voter (Go duration)."
  type        = string
  default     = "10s"
  validation {
    condition     = can(regex("^[0-9]+(ms|s|m|h)$", var.stabilization_time))
    error_message = "stabilization_time must be a Go duration such as 500ms or 10s."
  }
}
