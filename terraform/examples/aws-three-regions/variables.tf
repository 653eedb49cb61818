variable "regions" {
  description = "The three regions: Meridian name, AWS region, availability zones, VPC CIDR and AMI. The first one bootstraps the placement group."
  type = list(object({
    name     = string
    aws      = string
    zones    = list(string)
    vpc_cidr = string
    ami_id   = string
  }))
  default = [
    { name = "eu-west", aws = "eu-west-1", zones = ["eu-west-1a", "eu-west-1b", "eu-west-1c"], vpc_cidr = "10.40.0.0/16", ami_id = "ami-00000000000000001" },
    { name = "us-east", aws = "us-east-1", zones = ["us-east-1a", "us-east-1b", "us-east-1c"], vpc_cidr = "10.41.0.0/16", ami_id = "ami-00000000000000002" },
    { name = "ap-south", aws = "ap-south-1", zones = ["ap-south-1a", "ap-south-1b", "ap-south-1c"], vpc_cidr = "10.42.0.0/16", ami_id = "ami-00000000000000003" },
  ]
  validation {
    condition     = length(var.regions) == 3 && length(distinct([for r in var.regions : r.name])) == 3
    error_message = "this example wires exactly three regions with distinct names."
  }
}

variable "nodes_per_region" {
  description = "Nodes per region: 1, 3 or 5."
  type        = number
  default     = 3
  validation {
    condition     = contains([1, 3, 5], var.nodes_per_region)
    error_message = "nodes_per_region must be 1, 3 or 5."
  }
}

variable "instance_type" {
  description = "EC2 instance type of every node."
  type        = string
  default     = "m7i.large"
}

variable "client_cidrs" {
  description = "CIDRs allowed to call the API."
  type        = list(string)
  default     = []
}

variable "meridian_binary_url" {
  description = "HTTPS URL of the meridian binary (linux/amd64 for m/c/r *i instances)."
  type        = string
}

variable "meridian_binary_sha256" {
  description = "SHA-256 of the binary."
  type        = string
}

variable "gossip_key" {
  description = "Base64 of 32 random bytes (head -c 32 /dev/urandom | base64)."
  type        = string
  sensitive   = true
}

variable "tls_parameter_prefix" {
  description = "SSM Parameter Store path of the TLS material (see modules/region); empty: plaintext."
  type        = string
  default     = ""
}

variable "auth_tokens" {
  description = "Require bearer tokens (the token file at <tls_parameter_prefix>/tokens)."
  type        = bool
  default     = false
}
