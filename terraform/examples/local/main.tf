# A Meridian deployment on this machine, for trying the modules' wiring for
# real: one `meridian server` process per node on 127.0.0.1, configured by
# the same node-config module the AWS region module uses. `terraform
# apply` starts them, `terraform destroy` stops them with SIGTERM.

locals {
  nodes = flatten([for r, region in var.regions : [for i in range(var.nodes_per_region) : {
    key    = "${region}/n${i + 1}"
    region = region
    id     = "n${i + 1}"
    first  = i == 0
    k      = r * var.nodes_per_region + i
  }]])
  ports = { for n in local.nodes : n.key => {
    api        = var.base_port + 10 * n.k
    raft       = var.base_port + 10 * n.k + 1
    placement  = var.base_port + 10 * n.k + 2
    gossip     = var.base_port + 10 * n.k + 3
    gossip_wan = var.base_port + 10 * n.k + 4
  } }
  seed_key  = local.nodes[0].key
  seed_addr = "127.0.0.1:${local.ports[local.seed_key].api}"
}

module "node_config" {
  source   = "../../modules/node-config"
  for_each = { for n in local.nodes : n.key => n }

  region              = each.value.region
  node_id             = each.value.id
  data_dir            = "${var.state_dir}/${each.value.region}-${each.value.id}/data"
  listen_host         = "127.0.0.1"
  advertise_host      = "127.0.0.1"
  ports               = local.ports[each.key]
  bootstrap_region    = each.value.first
  bootstrap_placement = each.key == local.seed_key
  join                = each.key == local.seed_key ? [] : [local.seed_addr]
  dead_node_timeout   = "30s"
  stabilization_time  = "2s"
}

# One process per node, all started at once: a node given a join address
# retries until that node answers, and start-node.sh waits until each one's
# region has a leader.
resource "terraform_data" "node" {
  for_each = { for n in local.nodes : n.key => n }

  input = {
    dir = "${var.state_dir}/${replace(each.key, "/", "-")}"
    bin = var.meridian_bin
    api = module.node_config[each.key].api_address
  }

  provisioner "local-exec" {
    command     = "${path.module}/scripts/start-node.sh"
    environment = merge(module.node_config[each.key].env, { NODE_DIR = self.input.dir, MERIDIAN_BIN = self.input.bin, NODE_API = self.input.api })
  }

  provisioner "local-exec" {
    when    = destroy
    command = "${path.module}/scripts/stop-node.sh"
    environment = {
      NODE_DIR = self.input.dir
    }
  }
}
