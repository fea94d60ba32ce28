# Independent check of the MNIST CNN recipe that tests/train_classifier.rs runs: the CGN classifier,
# Adadelta 1.0 ×0.7 per epoch, batch 64, 3 epochs on the first 4,000 MNIST training digits, tested
# on the first 1,000 t10k digits. Usage: INTERVENE_DATA=.data python mnist_recipe_ref.py SEED
import gzip, numpy as np, torch, torch.nn as nn, torch.nn.functional as F, sys, os
torch.manual_seed(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
torch.set_num_threads(1)
d = os.environ["INTERVENE_DATA"] + "/mnist"
def load(img, lab):
    def op(n):
        for c in [n, n + ".gz"]:
            p = os.path.join(d, c)
            if os.path.exists(p):
                return gzip.open(p) if p.endswith(".gz") else open(p, "rb")
        raise FileNotFoundError(n)
    x = np.frombuffer(op(img).read(), np.uint8, offset=16).reshape(-1, 28, 28)
    y = np.frombuffer(op(lab).read(), np.uint8, offset=8)
    return x, y
xtr, ytr = load("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
xte, yte = load("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
def prep(x):
    t = torch.tensor(x[:, None].astype(np.float32) / 255).repeat(1, 3, 1, 1)
    t = F.interpolate(t, size=32, mode="bilinear", align_corners=False, antialias=True)
    return (t - 0.5) / 0.5
Xtr, Ytr = prep(xtr[:4000]), torch.tensor(ytr[:4000]).long()
Xte, Yte = prep(xte[:1000]), torch.tensor(yte[:1000]).long()
m = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 32, 5, 1, 2), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
    nn.Conv2d(32, 32, 3, 1, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(), nn.Conv2d(64, 64, 3, 1, 1), nn.ReLU(),
    nn.AvgPool2d(7), nn.Flatten(), nn.Linear(64, 10))
opt = torch.optim.Adadelta(m.parameters(), lr=1.0)
sch = torch.optim.lr_scheduler.StepLR(opt, 1, 0.7)
for ep in range(3):
    m.train()
    perm = torch.randperm(4000)
    for i in range(0, 4000, 64):
        idx = perm[i:i + 64]
        loss = F.nll_loss(F.log_softmax(m(Xtr[idx]), 1), Ytr[idx])
        opt.zero_grad(); loss.backward(); opt.step()
    sch.step()
    m.eval()
    with torch.no_grad():
        acc = (m(Xte).argmax(1) == Yte).float().mean().item()
    print(f"epoch {ep+1}: loss {loss.item():.4f} test acc {acc:.4f}")
