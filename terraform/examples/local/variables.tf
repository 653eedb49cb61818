variable "meridian_bin" {
  description = "Absolute path of the meridian binary to run."
  type        = string
  validation {
    condition     = startswith(var.meridian_bin, "/")
    error_message = "meridian_bin must be an absolute path."
  }
}

variable "state_dir" {
  description = "Absolute directory for the nodes' data, logs and pid files."
  type        = string
  validation {
    condition     = startswith(var.state_dir, "/")
    error_message = "state_dir must be an absolute path."
  }
}

variable "regions" {
  description = "Meridian region names; the first one bootstraps the placement group."
  type        = list(string)
  default     = ["eu-west", "us-east", "ap-south"]
  validation {
    condition     = length(var.regions) >= 1 && length(distinct(var.regions)) == length(var.regions)
    error_message = "give at least one region, each name once."
  }
}

variable "nodes_per_region" {
  description = "Nodes per region: 1 or 3."
  type        = number
  default     = 1
  validation {
    condition     = contains([1, 3], var.nodes_per_region)
    error_message = "nodes_per_region must be 1 or 3 on one machine."
  }
}

variable "base_port" {
  description = "First port; node k (in region order) uses base_port + 10k .. + 10k + 4 (API, Raft, placement, LAN and WAN gossip)."
  type        = number
  default     = 27001
  validation {
    condition     = var.base_port >= 1024 && var.base_port <= 60000
    error_message = "base_port must be within 1024-60000."
  }
}
