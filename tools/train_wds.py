# Train ResNet-18 on an `intervene export genint --layout webdataset` folder with PyTorch DDP.
#   torchrun --nproc_per_node=8 tools/train_wds.py /data/genint      (pip install torch torchvision webdataset)
# Checked on the CPU (gloo, 2 ranks) with webdataset 1.0.2 and torch 2.15.
import glob, os, sys
import torch, torch.distributed as dist, torchvision, webdataset as wds
from torchvision import transforms as T

cuda = torch.cuda.is_available()
dist.init_process_group("nccl" if cuda else "gloo")
rank, world = dist.get_rank(), dist.get_world_size()
device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if cuda else torch.device("cpu")
shards = sorted(glob.glob(os.path.join(sys.argv[1], "genint-*.tar")))
samples = sum(1 for _ in open(os.path.join(sys.argv[1], "manifest.jsonl")))
tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(),
                T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
batch = 64
ds = (wds.WebDataset(shards, resampled=True, shardshuffle=False, nodesplitter=wds.split_by_node)
      .shuffle(5000).decode("pil").to_tuple("png;jpg", "cls").map_tuple(tf, int).batched(batch))
steps = samples // (batch * world)  # one epoch's worth of batches per rank
loader = wds.WebLoader(ds, batch_size=None, num_workers=8).with_epoch(steps)
model = torch.nn.parallel.DistributedDataParallel(torchvision.models.resnet18(num_classes=1000).to(device))
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
for epoch in range(90):
    for x, y in loader:
        loss = torch.nn.functional.cross_entropy(model(x.to(device)), y.to(device))
        opt.zero_grad(); loss.backward(); opt.step()
    if rank == 0:
        print(f"epoch {epoch}: loss {loss.item():.3f}", flush=True)
